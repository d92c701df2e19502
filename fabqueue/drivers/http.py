"""The small HTTP client the HTTP hosts share (Moonraker, PrusaLink; OctoPrint keeps octorest).

Every request has a timeout, so a hung host can't hang a device worker. A refused, reset or
timed-out connection is :class:`DriverOffline`; an answer outside 2xx is :class:`DriverError`
with the status code and the host's own message (from its JSON where it has one) as reason
parameters, so staff read what the machine said, in a sentence of their language.
"""

from __future__ import annotations

from typing import Any

import httpx

from fabqueue.core.reasons import N_, reason
from fabqueue.drivers.base import DriverError, DriverOffline

DEFAULT_TIMEOUT_S = 5.0
UPLOAD_TIMEOUT_S = 120.0
MESSAGE_MAX = 300


def host_message(response: httpx.Response) -> str:
    """The host's own words for an error: JSON ``error.message``/``message``/``title``…"""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:MESSAGE_MAX]
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            for key in ("message", "title", "detail", "text"):
                if isinstance(err.get(key), str) and err[key]:
                    return str(err[key])[:MESSAGE_MAX]
        elif isinstance(err, str):
            return err[:MESSAGE_MAX]
    return response.text.strip()[:MESSAGE_MAX]


class HttpHost:
    """One host's base URL, auth headers and client; raises DriverError/DriverOffline."""

    def __init__(self, name: str, url: str, *, headers: dict[str, str] | None = None,
                 auth: httpx.Auth | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.name = name  # "Moonraker", "PrusaLink": how reasons name the host
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._client = httpx.Client(base_url=self.url, headers=headers or {}, auth=auth,
                                    timeout=httpx.Timeout(timeout_s))

    def close(self) -> None:
        self._client.close()

    def request(self, method: str, path: str, *, timeout_s: float | None = None,
                **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(
                method, path, timeout=httpx.Timeout(timeout_s or self.timeout_s), **kwargs)
        except (httpx.TransportError, OSError) as exc:
            raise DriverOffline(reason(
                "host_unreachable", N_("{host} at {url} did not answer ({error})"),
                host=self.name, url=self.url, error=type(exc).__name__)) from exc
        if not 200 <= response.status_code < 300:
            raise self.error_for(response)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """The decoded JSON answer; a body that isn't JSON is a DriverError."""
        response = self.request(method, path, **kwargs)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise DriverError(reason(
                "host_bad_answer", N_("{host} answered {path} with something that is not "
                                      "JSON"), host=self.name, path=path),
                code="bad_answer") from exc

    def error_for(self, response: httpx.Response) -> DriverError:
        status, text = response.status_code, host_message(response)
        if status == 403 and text and "key" not in text.lower():
            # e.g. Moonraker's "File is loaded, upload not permitted": not about the key
            return DriverError(reason("host_refused", N_("{host} refused this: {message}"),
                                      host=self.name, message=text), code="refused")
        if status in (401, 403):
            return DriverError(reason(
                "host_forbidden", N_("{host} refused the API key: check the key set for this "
                                     "printer ({status})"), host=self.name, status=status),
                code="forbidden")
        if status == 404:
            return DriverError(reason("host_not_found", N_("{host} has no such thing: {message}"),
                                      host=self.name, message=text), code="not_found")
        if status == 409:
            return DriverError(reason(
                "host_busy", N_("the printer is busy or not ready for this ({host} said: "
                                "{message})"), host=self.name, message=text), code="busy")
        return DriverError(reason("host_error", N_("{host} answered {status}: {message}"),
                                  host=self.name, status=status, message=text))
