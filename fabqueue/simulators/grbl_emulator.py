"""A GRBL 1.1h laser controller emulated on a pseudo-terminal.

pyserial opens ``emulator.device_path`` like a USB serial port. The emulator runs in
threads of the calling process, or standalone for the demo::

    python -m fabqueue.simulators.grbl_emulator --link /tmp/fabqueue-laser

which symlinks the pty to /tmp/fabqueue-laser until it is stopped (Ctrl-C / SIGTERM).
The model itself is in ``fabqueue.simulators.grbl.machine``; limits of the model: soft
limits use a 0..$13x machine space, G10/G28/G92/probing are not emulated (error:20), and
moves run at constant speed (no acceleration).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from fabqueue.simulators.grbl.gcode import Vector
from fabqueue.simulators.grbl.link import PtyLink
from fabqueue.simulators.grbl.machine import GrblMachine, MotionSegment

__all__ = ["GrblEmulator", "MotionSegment"]


class GrblEmulator:
    """A GRBL 1.1h emulator; see ``GrblMachine`` for the options' meaning.

    ``baud`` paces bytes both ways at ``baud / 10`` bytes/s (None: instant);
    ``line_latency_s`` delays every answer (a USB adapter's latency timer).
    """

    def __init__(
        self,
        *,
        time_scale: float = 1.0,
        min_block_s: float = 0.0,
        baud: int | None = None,
        line_latency_s: float = 0.0,
        laser_mode: bool = True,
        max_s: float = 1000,
        homing: bool = False,
        soft_limits: bool = False,
        travel_mm: tuple[float, float, float] = (400.0, 300.0, 50.0),
        status_mask: int = 1,
        reset_delay_s: float = 0.03,
    ) -> None:
        self._link = PtyLink(baud=baud, latency_s=line_latency_s)
        self.machine = GrblMachine(
            self._link, time_scale=time_scale, min_block_s=min_block_s, laser_mode=laser_mode,
            max_s=max_s, homing=homing, soft_limits=soft_limits, travel_mm=travel_mm,
            status_mask=status_mask, reset_delay_s=reset_delay_s,
        )  # fmt: skip
        self.device_path = self._link.device_path
        self._threads: list[threading.Thread] = []

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> GrblEmulator:
        targets: list[tuple[str, Callable[[], None]]] = [
            ("rx", lambda: self._link.read_loop(self.machine.receive)),
            ("tx", self._link.write_loop),
            ("protocol", self.machine.protocol_loop),
            ("motion", self.machine.motion_loop),
        ]
        for name, target in targets:
            thread = threading.Thread(target=target, name=f"grbl-emulator-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def close(self) -> None:
        self.machine.close()
        self._link.close()
        for thread in self._threads:
            thread.join(timeout=2)

    def vanish(self) -> None:
        """The port disappears mid-job (a USB cable pulled): the host's reads fail."""
        self.machine.close()
        self._link.close(vanish=True)

    def __enter__(self) -> GrblEmulator:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- observation and test hooks ------------------------------------------------------
    @property
    def state(self) -> str:
        with self.machine._cv:
            return self.machine.state_name()

    @property
    def position(self) -> Vector:
        with self.machine._cv:
            return self.machine.live_position()

    @property
    def settings(self) -> dict[int, float]:
        return self.machine.settings

    @property
    def segments(self) -> list[MotionSegment]:
        with self.machine._cv:
            return list(self.machine.segments)

    @property
    def lines_received(self) -> list[str]:
        with self.machine._cv:
            return list(self.machine.lines_received)

    def realtime_bytes(self) -> list[int]:
        with self.machine._cv:
            return [b for _, b in self.machine.realtime_received]

    def inject_error(self, code: int, line_number: int) -> None:
        """Answer ``error:code`` to the ``line_number``-th non-empty line from now on."""
        self.machine.inject_error(code, line_number)

    def reboot(self) -> None:
        """The board restarts by itself (a brown-out): banner, no alarm, position zeroed."""
        self.machine.soft_reset(power_cycle=True)

    def trigger_alarm(self, code: int) -> None:
        """Raise ``ALARM:code`` now (1 hard limit, 2 soft limit are critical)."""
        self.machine.raise_alarm(code)

    def wait_for_state(self, state: str, timeout_s: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.state == state:
                return True
            time.sleep(0.005)
        return False


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="GRBL 1.1h laser emulator on a pty")
    parser.add_argument("--link", type=Path, help="symlink to create to the pty device")
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--baud", type=int, default=None, help="pace bytes at this baud rate")
    parser.add_argument("--latency", type=float, default=0.0, help="answer delay, seconds")
    parser.add_argument("--homing", action="store_true", help="homing enabled ($22=1)")
    parser.add_argument("--no-laser-mode", action="store_true", help="$32=0")
    parser.add_argument("--max-s", type=float, default=1000)
    parser.add_argument(
        "--min-block-s", type=float, default=0.0, help="least time per planner block"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    emulator = GrblEmulator(
        time_scale=args.time_scale, baud=args.baud, line_latency_s=args.latency,
        homing=args.homing, laser_mode=not args.no_laser_mode, max_s=args.max_s,
        min_block_s=args.min_block_s,
    ).start()  # fmt: skip
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if args.link:
        with contextlib.suppress(FileNotFoundError):
            args.link.unlink()
        os.symlink(emulator.device_path, args.link)
    print(f"GRBL 1.1h emulator on {emulator.device_path}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        emulator.close()
        if args.link:
            with contextlib.suppress(FileNotFoundError):
                args.link.unlink()


if __name__ == "__main__":
    main()
