"""The serial link of the emulator: a pty pair, paced like a USB serial adapter.

Bytes the host writes land in the pty at once; the emulator takes them at the line rate
(``baud / 10`` bytes per second, 8N1) and answers at the same rate, each answer delayed by
``latency_s`` (an adapter's latency timer). Without a baud rate the link is instant.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import tty
from collections import deque
from collections.abc import Callable


def sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


class PtyLink:
    """The master side of a pty; ``device_path`` is what pyserial opens."""

    #: How many received bytes are handed over at once when pacing (finer costs CPU).
    CHUNK = 8

    def __init__(self, *, baud: int | None, latency_s: float) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self.master, False)
        self.device_path = os.ttyname(self._slave)
        self._byte_s = 10.0 / baud if baud else 0.0
        self._latency_s = latency_s
        self._rx_free_at = 0.0
        self._tx_free_at = 0.0
        self._out: deque[tuple[float, bytes]] = deque()
        self._out_cv = threading.Condition()
        self.closed = False
        self.vanished = False

    # -- receiving -------------------------------------------------------------------------
    def read_loop(self, deliver: Callable[[bytes], None]) -> None:
        """Hand received bytes to ``deliver`` at the line rate until the link closes."""
        while not self.closed:
            try:
                ready, _, _ = select.select([self.master], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(self.master, 4096)
            except (OSError, ValueError):
                return  # closed under us (vanish/close)
            if not data:
                continue
            if not self._byte_s:
                deliver(data)
                continue
            for i in range(0, len(data), self.CHUNK):
                chunk = data[i : i + self.CHUNK]
                start = max(time.monotonic(), self._rx_free_at)
                self._rx_free_at = start + len(chunk) * self._byte_s
                sleep_until(self._rx_free_at)
                if self.closed:
                    return
                deliver(chunk)

    # -- sending ---------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        with self._out_cv:
            self._out.append((time.monotonic() + self._latency_s, data))
            self._out_cv.notify()

    def write_loop(self) -> None:
        while True:
            with self._out_cv:
                while not self._out and not self.closed:
                    self._out_cv.wait(0.1)
                if self.closed:
                    return
                due, data = self._out.popleft()
            sleep_until(due)
            if self._byte_s:
                start = max(time.monotonic(), self._tx_free_at)
                self._tx_free_at = start + len(data) * self._byte_s
                sleep_until(self._tx_free_at)
            try:
                os.write(self.master, data)
            except BlockingIOError:
                pass  # nobody reads the port: the adapter's buffer overflows, bytes are lost
            except (OSError, ValueError):
                return

    # -- ending ----------------------------------------------------------------------------
    def close(self, *, vanish: bool = False) -> None:
        """Close both ends; ``vanish`` models a USB cable pulled mid-job (the host sees EIO)."""
        if self.closed:
            return
        self.closed = True
        self.vanished = vanish
        with self._out_cv:
            self._out_cv.notify_all()
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
