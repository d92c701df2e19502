"""The serial link to a GRBL controller: open, write, and a reader thread that survives.

The reader splits what arrives into lines and hands each to ``on_line`` as parsed items
(:mod:`.parsing`). It ends only when the port fails (``on_lost`` is called once) or the
link is closed: undecodable bytes, half lines and a line buffer that never sees a newline
are noise, and a bug in ``on_line`` is logged and the reader carries on. Its liveness is
observable (``reader_alive``) so tests and the driver can check it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import serial

from fabqueue.drivers.grbl.parsing import Item, parse

log = logging.getLogger(__name__)

MAX_LINE = 256  # GRBL's longest reply is ~100 bytes: more without a newline is garbage


class LinkError(OSError):
    pass


class SerialLink:
    def __init__(self, port: str, baud: int, on_line: Callable[[Item, str], None],
                 on_lost: Callable[[str], None]) -> None:
        self.port, self.baud = port, baud
        self._on_line, self._on_lost = on_line, on_lost
        self._serial: serial.Serial | None = None
        self._reader: threading.Thread | None = None
        self._closing = False
        self._write_lock = threading.Lock()

    def open(self) -> None:
        try:
            self._serial = serial.Serial(self.port, self.baud, timeout=0.05, write_timeout=2)
        except (serial.SerialException, OSError, ValueError) as err:
            raise LinkError(str(err)) from err
        self._closing = False
        self._reader = threading.Thread(target=self._read_loop, name="grbl-reader", daemon=True)
        self._reader.start()

    @property
    def reader_alive(self) -> bool:
        return self._reader is not None and self._reader.is_alive()

    def write(self, data: bytes) -> None:
        port = self._serial
        if port is None:
            raise LinkError("not open")
        try:
            with self._write_lock:
                port.write(data)
        except (serial.SerialException, OSError, TypeError, AttributeError) as err:
            self._lost(str(err) or "the port closed")
            raise LinkError(str(err) or "the port closed") from err

    def close(self) -> None:
        self._closing = True
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join(timeout=2)
        port, self._serial = self._serial, None
        if port is not None:
            try:
                port.close()
            except Exception:  # closing a vanished port may fail: it is gone either way
                log.debug("closing %s failed", self.port, exc_info=True)

    def _lost(self, reason: str) -> None:
        if not self._closing:
            self._closing = True
            self._on_lost(reason)

    def _read_loop(self) -> None:
        port = self._serial
        pending = b""
        while not self._closing and port is not None:
            try:
                data = port.read(max(1, port.in_waiting))
            except (serial.SerialException, OSError, TypeError, AttributeError) as err:
                self._lost(str(err) or "the port closed")
                return
            if not data:
                continue
            pending += data
            *complete, pending = pending.split(b"\n")
            if len(pending) > MAX_LINE:
                complete.append(pending)
                pending = b""
            for raw in complete:
                text = raw.decode("ascii", "replace").strip()
                if not text:
                    continue
                try:
                    self._on_line(parse(text), text)
                except Exception:  # a bug in handling must not kill the reader
                    log.exception("GRBL reader: handling %r failed; carrying on", text)
