"""A pty relay between a driver and the real GRBL firmware: a spy, and a noisy line.

The driver opens ``relay.device_path`` (a fresh pseudo-terminal) like a serial port; the
relay copies bytes both ways to the firmware's own pty. On the way it records what the
driver sent (``lines``, ``realtime`` with times) and what GRBL answered (``replies``), and,
with ``noise``, corrupts the controller's replies the way a USB-serial link beside a laser
power supply does: drops, duplicates and flips a fraction of the bytes and delivers the
rest in random splits (so lines arrive cut anywhere). What the driver sends is never
touched: GRBL itself must see a clean program.

``reattach()`` re-opens the firmware side (after the firmware restarted behind the relay:
a controller that rebooted while its USB link stayed up).
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
import tty
from dataclasses import dataclass

import serial

REALTIME = {ord("?"), ord("!"), ord("~"), 0x18, 0x85} | set(range(0x90, 0xA0))


@dataclass
class Noise:
    seed: int
    drop: float = 0.004
    duplicate: float = 0.004
    flip: float = 0.004


class GrblRelay:
    def __init__(self, firmware_path: str, noise: Noise | None = None) -> None:
        self.firmware_path = firmware_path
        self.noise = noise
        self._random = random.Random(noise.seed if noise else 0)
        self._master, self._slave = os.openpty()
        tty.setraw(self._master)
        tty.setraw(self._slave)
        self.device_path = os.ttyname(self._slave)
        self.lines: list[str] = []  # driver → GRBL, complete lines
        self.realtime: list[tuple[float, int]] = []  # driver → GRBL realtime bytes, when
        self.replies: list[str] = []  # GRBL → driver, as GRBL sent them (before any noise)
        self.corrupted = 0  # bytes dropped, duplicated or flipped
        self._lock = threading.Lock()
        self._inject = b""
        self._stop = False
        self._firmware: serial.Serial | None = None
        self._open_firmware()
        self._threads = [threading.Thread(target=self._up, daemon=True),
                         threading.Thread(target=self._down, daemon=True)]
        for thread in self._threads:
            thread.start()

    def _open_firmware(self) -> None:
        self._firmware = serial.Serial(self.firmware_path, 115200, timeout=0.02)

    def reattach(self) -> None:
        with self._lock:
            old, self._firmware = self._firmware, None
            with contextlib.suppress(Exception):
                if old is not None:
                    old.close()
            deadline = time.monotonic() + 10
            while True:
                try:
                    self._open_firmware()
                    return
                except serial.SerialException:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    def close(self) -> None:
        self._stop = True
        for thread in self._threads:
            thread.join(timeout=2)
        with contextlib.suppress(Exception):
            if self._firmware is not None:
                self._firmware.close()
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    # driver → GRBL: copied as is, recorded
    def _up(self) -> None:
        import select

        pending = b""
        while not self._stop:
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self._master, 1024)
            except OSError:
                time.sleep(0.02)  # the driver closed its end; it may open it again
                continue
            now = time.monotonic()
            for byte in data:
                if byte in REALTIME:
                    self.realtime.append((now, byte))
                else:
                    pending += bytes([byte])
            *done, pending = pending.split(b"\n")
            self.lines += [x.decode(errors="replace").strip() for x in done]
            self._to_firmware(data)

    def _to_firmware(self, data: bytes) -> None:
        with self._lock:
            port = self._firmware
            if port is None:
                return
            with contextlib.suppress(serial.SerialException, OSError, TypeError):
                port.write(data)

    # GRBL → driver: recorded, then (with noise) corrupted
    def _down(self) -> None:
        pending = b""
        while not self._stop:
            port = self._firmware
            try:
                data = port.read(256) if port is not None else b""
            except (serial.SerialException, OSError, TypeError, AttributeError):
                time.sleep(0.02)
                continue
            if not data:
                continue
            pending += data
            *done, pending = pending.split(b"\n")
            self.replies += [x.decode(errors="replace").strip() for x in done]
            if self.noise is not None:
                data = self._corrupt(data)
            if self._inject and data.endswith(b"\n"):
                data, self._inject = data + self._inject, b""
            self._deliver(data)

    def _corrupt(self, data: bytes) -> bytes:
        noise, rnd = self.noise, self._random
        assert noise is not None
        out = bytearray()
        for byte in data:
            roll = rnd.random()
            if roll < noise.drop:
                self.corrupted += 1
                continue
            if roll < noise.drop + noise.duplicate:
                self.corrupted += 1
                out += bytes([byte, byte])
                continue
            if roll < noise.drop + noise.duplicate + noise.flip:
                self.corrupted += 1
                out.append(byte ^ (1 << rnd.randrange(8)))
                continue
            out.append(byte)
        return bytes(out)

    def _deliver(self, data: bytes) -> None:
        while data:  # random splits: a line may arrive in pieces, with pauses between
            cut = self._random.randint(1, max(1, len(data))) if self.noise else len(data)
            piece, data = data[:cut], data[cut:]
            with contextlib.suppress(OSError):
                os.write(self._master, piece)
            if data:
                time.sleep(self._random.random() * 0.002)

    def inject(self, data: bytes) -> None:
        """Bytes to the driver that GRBL never sent (a reply made up by the line), delivered
        between two of GRBL's lines."""
        self._inject = data

    # checks
    def realtime_bytes(self) -> list[int]:
        return [b for _, b in self.realtime]
