"""A ``requests.Session`` with a whole-request deadline and an answer size cap (OctoPrint,
whose ``octorest`` client takes a session).

requests' timeouts are per socket read: a host sending a byte every half second never trips
them. Here every connection a request uses is noted, and at the deadline a timer shuts its
socket down, which ends a blocked read at once (the request then fails as a timeout). Every
answer is read in full up to ``max_response_bytes`` (decoded: a gzip bomb too) and refused
beyond it, before octorest parses it.
"""

from __future__ import annotations

import contextlib
import contextvars
import socket
import threading
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

MAX_RESPONSE_BYTES = 4 * 1024 * 1024

# the sockets the current request has used (None: outside a deadline)
_in_use: contextvars.ContextVar[list[socket.socket] | None] = contextvars.ContextVar(
    "fabqueue_requests_sockets", default=None)


def _note(sock: Any) -> None:
    used = _in_use.get()
    if used is not None and isinstance(sock, socket.socket):
        used.append(sock)


class _NotedHTTP(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _note(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:  # a kept-alive connection too
        _note(self.sock)
        super().request(*args, **kwargs)


class _NotedHTTPS(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _note(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _note(self.sock)
        super().request(*args, **kwargs)


class _Pool(HTTPConnectionPool):
    ConnectionCls = _NotedHTTP


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _NotedHTTPS


class _Adapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _HTTPSPool}


class AnswerTooBig(requests.RequestException):
    """The host's answer passed the size limit; it was not read further."""

    def __init__(self, url: str, limit: int) -> None:
        super().__init__(f"{url} answered with more than {limit} bytes")
        self.url, self.limit = url, limit


class DeadlineSession(requests.Session):
    """Every request is over within its timeout (the ``timeout`` given, else ``timeout_s``),
    connect, headers and body together; a late one raises ``requests.Timeout``."""

    def __init__(self, timeout_s: float, max_response_bytes: int = MAX_RESPONSE_BYTES) -> None:
        super().__init__()
        self.timeout_s = timeout_s
        self.max_response_bytes = max_response_bytes
        adapter = _Adapter()
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def request(self, method: str | bytes, url: str | bytes, *args: Any,
                **kwargs: Any) -> requests.Response:
        limit = float(kwargs.get("timeout") or self.timeout_s)
        kwargs["timeout"], kwargs["stream"] = limit, True
        used: list[socket.socket] = []
        expired = threading.Event()

        def cut() -> None:
            expired.set()
            for sock in list(used):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

        timer = threading.Timer(limit, cut)
        timer.daemon = True
        token = _in_use.set(used)
        timer.start()
        try:
            response = super().request(method, url, *args, **kwargs)
            with response:
                body = self._read_capped(response)
        except requests.RequestException as exc:
            if expired.is_set() and not isinstance(exc, AnswerTooBig):
                raise requests.Timeout(f"{url!s} did not answer in full within {limit:g} s") \
                    from exc
            raise
        finally:
            timer.cancel()
            _in_use.reset(token)
        response._content = body  # what requests keeps once a body is read (.json(), .text)
        return response

    def _read_capped(self, response: requests.Response) -> bytes:
        chunks, size = [], 0
        for chunk in response.iter_content(64 * 1024):
            size += len(chunk)
            if size > self.max_response_bytes:
                raise AnswerTooBig(str(response.url), self.max_response_bytes)
            chunks.append(chunk)
        return b"".join(chunks)
