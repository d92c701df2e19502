"""The small HTTP client the HTTP hosts share (Moonraker, PrusaLink; OctoPrint keeps octorest).

Every request has a deadline for the whole exchange (connect, headers, body), so a hung or
dripping host can't hang a device worker: httpx's timeouts are per read, and a host sending a
byte every half second never trips them. The deadline is kept by the network streams under
httpx (:class:`DeadlineBackend`: each read and write gets at most the time left). Every
answer is read up to ``max_response_bytes`` and cut off beyond it. A refused, reset or
timed-out connection is :class:`DriverOffline`; an answer outside 2xx is :class:`DriverError`
with the status code and the host's own message (from its JSON where it has one) as reason
parameters, so staff read what the machine said, in a sentence of their language.
"""

from __future__ import annotations

import contextvars
import time
from typing import Any

import httpcore
import httpx

from fabqueue.core.reasons import N_, reason
from fabqueue.drivers.base import DriverError, DriverOffline

DEFAULT_TIMEOUT_S = 5.0
UPLOAD_TIMEOUT_S = 120.0
MESSAGE_MAX = 300
# Status answers are a few kB and no host call reads a file back: a larger answer is a broken
# or hostile host, refused before it fills the worker's memory.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
_HOP_HEADERS = ("content-encoding", "content-length", "transfer-encoding")

# the monotonic instant the current request must be over by (None: no deadline)
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "fabqueue_http_deadline", default=None)


def time_left(timeout: float | None, error: type[Exception]) -> float | None:
    """The shorter of ``timeout`` and the time left before the request's deadline; raises
    ``error`` once the deadline has passed."""
    deadline = _deadline.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the request's deadline passed")
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write waits at most until the request's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, time_left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return DeadlineStream(self._inner.start_tls(
            ssl_context, server_hostname, time_left(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None, socket_options: Any = None,
                    ) -> httpcore.NetworkStream:
        return DeadlineStream(self._inner.connect_tcp(
            host, port, time_left(timeout, httpcore.ConnectTimeout), local_address,
            socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore.NetworkStream:
        return DeadlineStream(self._inner.connect_unix_socket(
            path, time_left(timeout, httpcore.ConnectTimeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def deadline_transport() -> httpx.HTTPTransport:
    """httpx's own transport over a pool whose connections keep the request's deadline.
    httpx takes no network backend of its own, so its pool is replaced by the same pool
    (httpcore's, httpx's default limits) with ours; tests/drivers/test_http_deadline.py
    fails if a new httpx stops using it."""
    transport = httpx.HTTPTransport()
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(), max_connections=100,
        max_keepalive_connections=20, keepalive_expiry=5.0, network_backend=DeadlineBackend())
    return transport


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
                 auth: httpx.Auth | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 max_response_bytes: int = MAX_RESPONSE_BYTES) -> None:
        self.name = name  # "Moonraker", "PrusaLink": how reasons name the host
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_response_bytes = max_response_bytes
        self._client = httpx.Client(base_url=self.url, headers=headers or {}, auth=auth,
                                    timeout=httpx.Timeout(timeout_s),
                                    transport=deadline_transport())

    def close(self) -> None:
        self._client.close()

    def request(self, method: str, path: str, *, timeout_s: float | None = None,
                **kwargs: Any) -> httpx.Response:
        """One exchange, over within ``timeout_s`` (whole request), its body read in full
        up to ``max_response_bytes``."""
        limit = timeout_s or self.timeout_s
        token = _deadline.set(time.monotonic() + limit)
        try:
            with self._client.stream(method, path, timeout=httpx.Timeout(limit),
                                     **kwargs) as streamed:
                body = self._read_capped(streamed, path)
        except (httpx.TransportError, OSError) as exc:
            if isinstance(exc, httpx.TimeoutException):
                raise DriverOffline(reason(
                    "host_deadline", N_("{host} at {url} did not finish answering within "
                                        "{seconds} s"),
                    host=self.name, url=self.url, seconds=f"{limit:g}")) from exc
            raise DriverOffline(reason(
                "host_unreachable", N_("{host} at {url} did not answer ({error})"),
                host=self.name, url=self.url, error=type(exc).__name__)) from exc
        finally:
            _deadline.reset(token)
        # the body as read (decoded): the encoding headers no longer describe it
        headers = [(k, v) for k, v in streamed.headers.multi_items()
                   if k.lower() not in _HOP_HEADERS]
        response = httpx.Response(streamed.status_code, headers=headers, content=body,
                                  request=streamed.request)
        if not 200 <= response.status_code < 300:
            raise self.error_for(response)
        return response

    def _read_capped(self, response: httpx.Response, path: str) -> bytes:
        """The decoded body, refused once it passes the limit (a gzip bomb too)."""
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.max_response_bytes:
                raise DriverError(reason(
                    "host_answer_too_big", N_("{host} answered {path} with more than {limit} "
                                              "bytes; the answer was cut off"),
                    host=self.name, path=path, limit=self.max_response_bytes),
                    code="bad_answer")
            chunks.append(chunk)
        return b"".join(chunks)

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
