"""The emulator's `$` system commands: settings, unlock, homing, check mode, jogging.

Mixed into ``GrblMachine``; all methods run with its condition variable held and return
the code to answer (0 = ok) or ``ANSWERED`` when they answered (or a reset swallowed it).
"""

from __future__ import annotations

import re
import time

from fabqueue.simulators.grbl.gcode import GcodeError, Modal, interpret
from fabqueue.simulators.grbl.settings import (
    PLANNER_BLOCKS,
    RX_BUFFER_BYTES,
    format_setting,
    validate_write,
)

ANSWERED = -1
_SETTING_WRITE = re.compile(r"\$(\d+)=(.*)")


class SystemCommandsMixin:
    """`$` commands of ``GrblMachine`` (which defines the state used here)."""

    def _system_command(self, line: str, raw: bytes) -> int:
        if line == "$":
            self._emit("[HLP:$$ $# $G $I $N $x=val $Nx=line $J=line $SLP $C $X $H ~ ! ? ctrl-x]")
            return 0
        if line.startswith("$J="):
            return self._jog(line[3:], raw)
        if line == "$G":
            self._emit(self.modal.report())
            return 0
        if line == "$C":
            return self._toggle_check_mode(raw)
        if line == "$X":
            if self._alarm:
                self._alarm = False
                self._emit("[MSG:Caution: Unlocked]")
            return 0
        if line == "$$":
            if self._planner or self._hold:
                return 8
            for number, value in self.settings.items():
                self._emit(format_setting(number, value))
            return 0
        if self.state_name() not in ("Idle", "Alarm"):
            return 8  # not idle
        if line == "$H":
            return self._home()
        if line == "$I":
            self._emit("[VER:1.1h.20190830:]")
            self._emit(f"[OPT:V,{PLANNER_BLOCKS},{RX_BUFFER_BYTES}]")
            return 0
        if line == "$#":
            for name in ("G54", "G55", "G56", "G57", "G58", "G59", "G28", "G30", "G92"):
                self._emit(f"[{name}:0.000,0.000,0.000]")
            self._emit("[TLO:0.000]")
            self._emit("[PRB:0.000,0.000,0.000:0]")
            return 0
        if line == "$N":
            self._emit("$N0=")
            self._emit("$N1=")
            return 0
        match = _SETTING_WRITE.fullmatch(line)
        if match is None:
            return 3
        return self._write_setting(int(match.group(1)), match.group(2))

    def _write_setting(self, number: int, text: str) -> int:
        try:
            value = float(text)
        except ValueError:
            return 2
        code = validate_write(self.settings, number, value)
        if code is not None:
            return code
        self.settings[number] = value
        # The EEPROM write stalls the serial interrupt: what arrives meanwhile is lost.
        deadline = time.monotonic() + self.eeprom_stall_s
        self._deaf_until = deadline
        while (left := deadline - time.monotonic()) > 0:
            self._cv.wait(left)
        return 0

    def _toggle_check_mode(self, raw: bytes) -> int:
        if self._check_mode:
            self._emit("[MSG:Disabled]")
            self._answer(raw, 0)
            self.soft_reset()  # leaving check mode resets by itself
            return ANSWERED
        if self.state_name() != "Idle":
            return 8
        self._check_mode = True
        self._emit("[MSG:Enabled]")
        return 0

    def _home(self) -> int:
        if not self.settings[22]:
            return 5  # homing not enabled
        epoch = self._epoch
        self._homing = self._waiting = True
        deadline = time.monotonic() + self.homing_s
        while epoch == self._epoch and (left := deadline - time.monotonic()) > 0:
            self._cv.wait(left)
        self._waiting = False
        if epoch != self._epoch:
            return ANSWERED
        self._homing = self._alarm = False
        self._position = (0.0, 0.0, 0.0)
        self.modal.position = self._position
        return 0

    def _jog(self, body: str, raw: bytes) -> int:
        if self.state_name() not in ("Idle", "Jog"):
            return 8
        jog_modal = Modal(
            motion="1", inches=self.modal.inches, incremental=False, position=self.modal.position
        )
        try:
            planned = interpret(body, jog_modal)
        except GcodeError as err:
            return err.code
        if "F" not in body:
            return 22
        if self.settings[20] and any(not self._within_travel(m.end) for m in planned.moves):
            return 15  # jog travel exceeded
        for move in planned.moves:
            if not self._wait_planner(self._epoch, until_empty=False):
                return ANSWERED
            self._plan(move, self._lines_total, raw.decode("latin-1"), jog=True)
        self.modal.position = jog_modal.position
        return 0
