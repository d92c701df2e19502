"""The GRBL 1.1h machine model: receive buffer, line protocol, 15-block planner and motion.

Faithful to /work/shared/notes/grbl.md where it matters to a sender: the 128-byte receive
buffer drops what does not fit, every line gets ``ok``/``error:N`` in order, ``ok`` is sent
when a line's moves are in the planner (so a full planner stalls the line protocol and the
receive buffer fills), realtime bytes act at once, a soft reset during motion raises
ALARM:3 and loses what was buffered. Time is simulated: a move takes its distance over its
feed rate, times ``time_scale`` (use e.g. 0.01 in tests), plus ``min_block_s``.

Threads: the link's reader (realtime bytes, buffer), the protocol loop (lines), the motion
loop (planner, ``motion.py``) and the link's writer. All state is guarded by one condition
variable. `$` commands are in ``system_commands.py``.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from fabqueue.simulators.grbl.gcode import GcodeError, Modal, Vector, clean, interpret
from fabqueue.simulators.grbl.link import PtyLink
from fabqueue.simulators.grbl.motion import MotionMixin, MotionSegment, PlannerBlock
from fabqueue.simulators.grbl.settings import (
    BANNER,
    LINE_MAX_CHARS,
    PLANNER_BLOCKS,
    RX_BUFFER_BYTES,
    UNLOCK_MESSAGE,
    default_settings,
)
from fabqueue.simulators.grbl.system_commands import ANSWERED, SystemCommandsMixin

__all__ = ["GrblMachine", "MotionSegment"]

_REALTIME = frozenset(b"?!~\x18")


class GrblMachine(SystemCommandsMixin, MotionMixin):
    """The firmware's behaviour; ``GrblEmulator`` wires it to a pty."""

    def __init__(
        self,
        link: PtyLink,
        *,
        time_scale: float = 1.0,
        min_block_s: float = 0.0,
        laser_mode: bool = True,
        max_s: float = 1000,
        homing: bool = False,
        soft_limits: bool = False,
        travel_mm: tuple[float, float, float] = (400.0, 300.0, 50.0),
        status_mask: int = 1,
        reset_delay_s: float = 0.03,
        eeprom_stall_s: float = 0.02,
        hold_decel_s: float = 0.05,
        homing_s: float = 0.2,
    ) -> None:
        self._link = link
        self.time_scale = time_scale
        self.min_block_s = min_block_s
        self.reset_delay_s = reset_delay_s
        self.eeprom_stall_s = eeprom_stall_s
        self.hold_decel_s = hold_decel_s
        self.homing_s = homing_s
        self.settings = default_settings(
            laser_mode=laser_mode, max_s=max_s, homing=homing, soft_limits=soft_limits,
            travel_mm=travel_mm, status_mask=status_mask,
        )  # fmt: skip
        self.modal = Modal()
        self._cv = threading.Condition()
        self._rx = bytearray()
        self._line = bytearray()
        self._planner: deque[PlannerBlock] = deque()
        self._epoch = 0
        self._alarm = homing  # power-up with homing enabled: position unknown, locked
        self._critical = False  # ALARM:1/2: nothing but a soft reset is heard
        self._hold = False
        self._hold_at = 0.0
        self._held_moving = False
        self._resumed_at = 0.0
        self._check_mode = False
        self._homing = False
        self._deaf_until = 0.0
        self._banner_due: float | None = None
        self._overrides = [100, 100, 100]  # feed, rapid, spindle (%)
        self._position: Vector = (0.0, 0.0, 0.0)
        self._current: PlannerBlock | None = None
        self._t0 = 0.0
        self._t_end = 0.0
        self._reports = 0
        self._lines_total = 0
        self._unanswered_bytes = 0
        self._injected: dict[int, int] = {}
        self._lines_since_arm = 0
        self._waiting = False  # the line protocol is blocked (planner full, dwell, homing...)
        self.closed = False
        # observations for tests and benchmarks
        self.segments: list[MotionSegment] = []
        self.lines_received: list[str] = []
        self.responses: list[str] = []
        self.realtime_received: list[tuple[float, int]] = []
        self.max_rx_fill = 0
        self.max_unanswered_bytes = 0
        self.rx_dropped = 0
        self.resets = 0

    # == state ===============================================================================
    def state_name(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        if self._alarm:
            return "Alarm"
        if self._homing:
            return "Home"
        if self._hold:
            decelerating = self._held_moving and now - self._hold_at < self.hold_decel_s
            return "Hold:1" if decelerating else "Hold:0"
        if self._check_mode:
            return "Check"
        if self._planner:
            return "Jog" if self._planner[0].jog else "Run"
        return "Idle"

    def live_position(self, now: float | None = None) -> Vector:
        block = self._current
        if block is None:
            return self._position
        now = time.monotonic() if now is None else now
        if self._hold:
            now = min(now, self._hold_at)
        frac = 1.0 if block.duration_s <= 0 else (now - self._t0) / block.duration_s
        frac = min(max(frac, 0.0), 1.0)
        s, e = block.move.start, block.move.end
        return tuple(a + (b - a) * frac for a, b in zip(s, e, strict=True))  # type: ignore[return-value]

    def status_report(self) -> str:
        now = time.monotonic()
        pos = ",".join(f"{v:.3f}" for v in self.live_position(now))
        mask = int(self.settings[10])
        parts = [self.state_name(now), ("MPos:" if mask & 1 else "WPos:") + pos]
        if mask & 2:
            free_blocks = PLANNER_BLOCKS - len(self._planner)
            parts.append(f"Bf:{free_blocks},{RX_BUFFER_BYTES - len(self._rx)}")
        block = self._current
        feed = block.feed if block is not None and not self._hold else 0
        power = self.modal.power if self.modal.spindle != "5" else 0
        parts.append(f"FS:{feed:g},{power:g}")
        self._reports += 1
        if self._overrides != [100, 100, 100] or self._reports % 10 == 1:
            parts.append("Ov:" + ",".join(str(v) for v in self._overrides))
        elif self._reports % 10 == 2:
            parts.append("WCO:0.000,0.000,0.000")
        return "<" + "|".join(parts) + ">"

    def _emit(self, text: str) -> None:
        self.responses.append(text)
        self._link.send((text + "\r\n").encode())

    def _answer(self, raw: bytes, code: int) -> None:
        self._unanswered_bytes = max(0, self._unanswered_bytes - len(raw) - 1)
        self._emit("ok" if code == 0 else f"error:{code}")

    # == receiving (link reader thread) ======================================================
    def receive(self, data: bytes) -> None:
        with self._cv:
            for byte in data:
                self._receive_byte(byte)
            self._cv.notify_all()

    def _receive_byte(self, byte: int) -> None:
        now = time.monotonic()
        if now < self._deaf_until:
            self.rx_dropped += 1  # booting after a reset, or the EEPROM write stalls the UART
            return
        if byte in _REALTIME or byte >= 0x80:
            self.realtime_received.append((now, byte))
            self._realtime(byte, now)
            return
        if self._critical:
            return
        # Bytes come in at the line rate; the firmware keeps up unless its line protocol is
        # blocked. An unpaced link delivers a whole write at once, so give the protocol loop
        # the time it would have had.
        while len(self._rx) >= RX_BUFFER_BYTES and not self._protocol_blocked():
            self._cv.wait(0.002)
        if len(self._rx) >= RX_BUFFER_BYTES:
            self.rx_dropped += 1
            return
        self._rx.append(byte)
        self._unanswered_bytes += 1
        self.max_rx_fill = max(self.max_rx_fill, len(self._rx))
        self.max_unanswered_bytes = max(self.max_unanswered_bytes, self._unanswered_bytes)

    def _protocol_blocked(self) -> bool:
        return (
            self.closed or self._waiting or self._hold or self._critical
            or self._banner_due is not None
        )  # fmt: skip

    def _realtime(self, byte: int, now: float) -> None:
        if byte == 0x18:
            self.soft_reset()
        elif self._critical:
            return  # after ALARM:1/2 even `?` goes unanswered until a reset
        elif byte == ord("?"):
            self._emit(self.status_report())
        elif byte == ord("!"):
            if self._planner and self._planner[0].jog:
                self._cancel_jog()
            elif not self._hold and not self._alarm and not self._check_mode:
                self._hold, self._hold_at = True, now
                self._held_moving = bool(self._planner)
        elif byte == ord("~"):
            if self._hold:
                self._hold, self._resumed_at = False, now
        elif byte == 0x85:
            self._cancel_jog()
        else:
            self._override(byte)

    def _override(self, byte: int) -> None:
        feed, rapid, spindle = self._overrides
        steps = {0x91: 10, 0x92: -10, 0x93: 1, 0x94: -1}
        if byte == 0x90:
            feed = 100
        elif byte in steps:
            feed = min(200, max(10, feed + steps[byte]))
        elif byte in (0x95, 0x96, 0x97):
            rapid = {0x95: 100, 0x96: 50, 0x97: 25}[byte]
        elif byte == 0x99:
            spindle = 100
        elif byte in (0x9A, 0x9B, 0x9C, 0x9D):
            spindle = min(200, max(10, spindle + steps[byte - 9]))
        self._overrides = [feed, rapid, spindle]

    def _cancel_jog(self) -> None:
        if self._planner and self._planner[0].jog:
            self._stop_motion()

    # == reset and alarms ====================================================================
    def soft_reset(self, *, power_cycle: bool = False) -> None:
        """0x18: stop at once; ALARM:3 if it was moving; banner after the reboot delay.

        ``power_cycle``: the board rebooted (brown-out, USB glitch): no alarm report, the
        position starts at zero and only a homing machine comes up locked."""
        with self._cv:
            moving = self._homing or (
                bool(self._planner) and not (self._hold and not self.state_name().endswith(":1"))
            )
            self.resets += 1
            self._stop_motion()
            self._rx.clear()
            self._line.clear()
            self._unanswered_bytes = 0
            self._critical = self._check_mode = self._homing = False
            if power_cycle:
                self._position, self._alarm = (0.0, 0.0, 0.0), bool(self.settings[22])
            self.modal = Modal(position=self._position)
            self._overrides = [100, 100, 100]
            if moving and not power_cycle:
                self._alarm = True
                self._emit("ALARM:3")
            self._deaf_until = time.monotonic() + self.reset_delay_s
            self._banner_due = self._deaf_until
            self._cv.notify_all()

    def raise_alarm(self, code: int) -> None:
        """Stop motion and enter the Alarm state; 1 (hard limit) and 2 (soft limit) are
        critical: only a soft reset is heard afterwards."""
        with self._cv:
            self._stop_motion()
            self._alarm = True
            self._emit(f"ALARM:{code}")
            if code in (1, 2):
                self._emit("[MSG:Reset to continue]")
                self._critical = True
            self._cv.notify_all()

    def _stop_motion(self) -> None:
        """Abort the running move (logged as cut short) and empty the planner."""
        self._epoch += 1
        block = self._current
        if block is not None:
            self._position = self.live_position()
            self._log(block, self._position, completed=False)
        self._current = None
        self._planner.clear()
        self._hold = False
        self._cv.notify_all()

    # == line protocol (protocol thread) =====================================================
    def protocol_loop(self) -> None:
        with self._cv:
            self._emit("")
            self._emit(BANNER)
            if self._alarm:
                self._emit(UNLOCK_MESSAGE)
            while not self.closed:
                if self._banner_due is not None:
                    wait = self._banner_due - time.monotonic()
                    if wait > 0:
                        self._cv.wait(wait)
                        continue
                    self._banner_due = None
                    self._emit("")
                    self._emit(BANNER)
                    if self._alarm:
                        self._emit(UNLOCK_MESSAGE)
                    continue
                if self._critical or self._hold or not self._rx:
                    self._cv.wait(0.1)
                    continue
                end = next((i for i, b in enumerate(self._rx) if b in (10, 13)), -1)
                taken = self._rx[: end + 1] if end >= 0 else self._rx[:]
                del self._rx[: len(taken)]
                self._line.extend(taken)
                if end < 0:
                    continue
                raw = bytes(self._line[:-1])
                self._line.clear()
                self._process_line(raw)

    def _process_line(self, raw: bytes) -> None:
        text = raw.decode("latin-1")
        self.lines_received.append(text)
        self._lines_total += 1
        line = clean(text)
        if not line:
            self._answer(raw, 0)  # empty line or comment: ok, for syncing
            return
        epoch = self._epoch
        self._lines_since_arm += 1
        code = self._injected.pop(self._lines_since_arm, None)
        if code is None:
            if len(line) > LINE_MAX_CHARS:
                code = 11
            elif line.startswith("$"):
                code = self._system_command(line, raw)
            elif self._alarm:
                code = 9
            else:
                code = self._gcode(line, text, epoch)
        if code != ANSWERED and epoch == self._epoch:
            self._answer(raw, code)

    def _wait_planner(self, epoch: int, *, until_empty: bool) -> bool:
        """Block the line protocol for planner room (or an empty planner); False on reset."""
        while epoch == self._epoch and not self.closed:
            room = len(self._planner) < PLANNER_BLOCKS
            if (not self._planner) if until_empty else room:
                self._waiting = False
                return True
            self._waiting = True
            self._cv.wait(0.1)
        self._waiting = False
        return False

    def _gcode(self, line: str, source: str, epoch: int) -> int:
        try:
            planned = interpret(line, self.modal, arc_tolerance=self.settings[12])
        except GcodeError as err:
            return err.code
        if self.settings[20] and any(not self._within_travel(m.end) for m in planned.moves):
            self.raise_alarm(2)
            return ANSWERED
        if self._check_mode:
            return 0
        if (planned.dwell_s is not None or planned.sync) and not self._wait_planner(
            epoch, until_empty=True
        ):
            return ANSWERED
        if planned.dwell_s:
            deadline = time.monotonic() + planned.dwell_s * self.time_scale
            self._waiting = True
            while epoch == self._epoch and (left := deadline - time.monotonic()) > 0:
                self._cv.wait(left)
            self._waiting = False
        if planned.pause:
            self._hold, self._hold_at, self._held_moving = True, time.monotonic(), False
        for move in planned.moves:
            if not self._wait_planner(epoch, until_empty=False):
                return ANSWERED
            self._plan(move, self._lines_total, source)
        return 0

    def _within_travel(self, point: Vector) -> bool:
        travel = (self.settings[130], self.settings[131], self.settings[132])
        return all(-1e-6 <= v <= t + 1e-6 for v, t in zip(point, travel, strict=True))

    # == test hooks ==========================================================================
    def inject_error(self, code: int, line_number: int) -> None:
        """Answer ``error:code`` to the ``line_number``-th non-empty line from now on."""
        with self._cv:
            self._lines_since_arm = 0
            self._injected = {line_number: code}

    def close(self) -> None:
        with self._cv:
            self.closed = True
            self._cv.notify_all()
