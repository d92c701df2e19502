"""Every call to a printer host has a deadline for the whole request and a size limit for
the answer (issue 19: a host dripping a byte every 0.5 s turned a 1 s timeout into 7 s, and
bodies had no cap).

The servers here are emulators of faults, not printer hosts: no real peer (Moonraker,
PrusaLink, OctoPrint) can be made to drip its answer or send an endless body, so a plain
socket server plays the broken host. The drivers' own calls go through the same client
(``HttpHost``), shown with MoonrakerDriver and PrusaLinkDriver; OctoPrint's octorest goes
through ``DeadlineSession``, tested at the end."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from fabqueue.core.reasons import decode
from fabqueue.drivers.base import DriverError, DriverOffline
from fabqueue.drivers.http import HttpHost
from fabqueue.drivers.moonraker import MoonrakerDriver
from fabqueue.drivers.octoprint import OctoPrintDriver
from fabqueue.drivers.prusalink import PrusaLinkDriver
from fabqueue.drivers.requests_deadline import AnswerTooBig, DeadlineSession

BODY = b'{"result": {"klippy_state": "ready"}}'


class FaultyHost:
    """A TCP server answering each connection with ``answer(conn)``; counts what it sent
    before the client went away."""

    def __init__(self, answer: Callable[[socket.socket, FaultyHost], None]) -> None:
        self.answer = answer
        self.sent = 0
        self.client_left = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)  # the request (small: a GET)
                try:
                    self.answer(conn, self)
                except OSError:  # the client hung up: what we want to see
                    self.client_left.set()

    def send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        self.sent += len(data)

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def faulty() -> Iterator[Callable[..., FaultyHost]]:
    made: list[FaultyHost] = []

    def make(answer: Callable[[socket.socket, FaultyHost], None]) -> FaultyHost:
        made.append(FaultyHost(answer))
        return made[-1]

    yield make
    for host in made:
        host.close()


def drip(data: bytes, every_s: float = 0.5) -> Callable[[socket.socket, FaultyHost], None]:
    def answer(conn: socket.socket, host: FaultyHost) -> None:
        for byte in data:
            host.send(conn, bytes([byte]))
            time.sleep(every_s)
    return answer


HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"


@pytest.mark.parametrize("where", ["headers", "body"])
def test_a_dripping_host_is_given_up_at_the_deadline(
        where: str, faulty: Callable[..., FaultyHost]) -> None:
    head = HEADERS % len(BODY)
    if where == "headers":
        host = faulty(drip(head + BODY))
    else:
        host = faulty(lambda conn, h: (h.send(conn, head), drip(BODY)(conn, h)))
    http = HttpHost("Moonraker", host.url, timeout_s=1.0)
    try:
        with pytest.raises(DriverOffline) as err:
            http.json("GET", "/server/info")
    finally:
        http.close()
    found = decode(err.value.reason)
    assert found is not None and found.code == "host_deadline", err.value.reason
    assert found.params["seconds"] == "1"
    # Per-read timeouts only would have read it all (each byte comes within 0.5 s). With a
    # 1 s deadline the client hangs up after a couple of bytes, however loaded the host.
    assert host.client_left.wait(30)
    dripped, total = ((host.sent, len(head) + len(BODY)) if where == "headers"
                      else (host.sent - len(head), len(BODY)))
    assert dripped < total / 2, (dripped, total)


def test_a_slow_but_whole_answer_within_the_deadline_is_read(
        faulty: Callable[..., FaultyHost]) -> None:
    host = faulty(lambda conn, h: h.send(conn, HEADERS % len(BODY) + BODY))
    http = HttpHost("Moonraker", host.url, timeout_s=30.0)
    try:
        assert http.json("GET", "/server/info") == {"result": {"klippy_state": "ready"}}
        assert http.json("GET", "/server/info")["result"]["klippy_state"] == "ready"
    finally:
        http.close()


def endless(conn: socket.socket, host: FaultyHost) -> None:
    host.send(conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"[" + b"0," * 32767 + b"0"
    while host.sent < 1024 * 1024 * 1024:  # a gigabyte, unless the client hangs up
        host.send(conn, b"%x\r\n%s\r\n" % (len(chunk), chunk))


def bomb(conn: socket.socket, host: FaultyHost) -> None:
    packed = gzip.compress(b" " * (64 * 1024 * 1024))  # 64 MB of spaces in ~64 kB
    host.send(conn, HEADERS.replace(b"\r\n\r\n", b"\r\nContent-Encoding: gzip\r\n\r\n")
              % len(packed) + packed)


@pytest.mark.parametrize("answer", [endless, bomb], ids=["endless", "gzip-bomb"])
def test_a_huge_answer_is_cut_off_with_a_clear_error(
        answer: Callable[[socket.socket, FaultyHost], None],
        faulty: Callable[..., FaultyHost]) -> None:
    host = faulty(answer)
    http = HttpHost("PrusaLink", host.url, timeout_s=60.0, max_response_bytes=1024 * 1024)
    try:
        with pytest.raises(DriverError) as err:
            http.json("GET", "/api/v1/status")
    finally:
        http.close()
    assert not isinstance(err.value, DriverOffline)
    found = decode(err.value.reason)
    assert found is not None and found.code == "host_answer_too_big", err.value.reason
    assert found.params == {"host": "PrusaLink", "path": "/api/v1/status", "limit": 1048576}
    if answer is endless:
        assert host.client_left.wait(30)
        assert host.sent < 64 * 1024 * 1024  # hung up long before the gigabyte


def test_the_host_drivers_use_the_deadline(faulty: Callable[..., FaultyHost]) -> None:
    host = faulty(drip(HEADERS % len(BODY) + BODY))
    moonraker = MoonrakerDriver(host.url, timeout_s=1.0)
    prusalink = PrusaLinkDriver(host.url, "key", timeout_s=1.0)
    try:
        for call in (moonraker.connect, prusalink.connect):
            with pytest.raises(DriverOffline) as err:
                call()
            found = decode(err.value.reason)
            assert found is not None and found.code == "host_deadline", err.value.reason
    finally:
        moonraker.close()
        prusalink.close()


# -- OctoPrint: octorest on requests, with the same deadline and cap ---------------------------
def test_octoprint_gives_up_a_dripping_host_at_the_deadline(
        faulty: Callable[..., FaultyHost]) -> None:
    body = b'{"api": "0.1", "server": "1.11.0", "text": "OctoPrint 1.11.0"}'
    head = HEADERS % len(body)
    host = faulty(lambda conn, h: (h.send(conn, head), drip(body)(conn, h)))
    octoprint = OctoPrintDriver(host.url, "key", timeout_s=1.0)
    try:
        with pytest.raises(DriverOffline):
            octoprint.connect()
    finally:
        octoprint.close()
    assert host.client_left.wait(30)
    assert host.sent - len(head) < len(body) / 2, host.sent  # hung up early


@pytest.mark.parametrize("answer", [endless, bomb], ids=["endless", "gzip-bomb"])
def test_octoprint_cuts_off_a_huge_answer(
        answer: Callable[[socket.socket, FaultyHost], None],
        faulty: Callable[..., FaultyHost]) -> None:
    host = faulty(answer)
    session = DeadlineSession(60.0, max_response_bytes=1024 * 1024)
    with pytest.raises(AnswerTooBig):
        session.get(f"{host.url}/api/version")
    session.close()
    octoprint = OctoPrintDriver(host.url, "key", timeout_s=60.0)
    octoprint._session.max_response_bytes = 1024 * 1024
    try:
        with pytest.raises(DriverError) as err:
            octoprint._raw("GET", "/api/files/local/fabqueue")
    finally:
        octoprint.close()
    found = decode(err.value.reason)
    assert found is not None and found.code == "host_answer_too_big", err.value.reason
    assert found.params["host"] == "OctoPrint"
