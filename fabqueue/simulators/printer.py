"""An in-process simulated 3D printer, for the demo and for tests of the queue side.

It runs no thread: its state is worked out from the clock whenever it is asked, under a lock,
so any number of threads may poll and command it and nothing is left running. A print heats
(``heat_s``), then prints for ``duration_s`` (or for the G-code's own time estimate from its
``M73 P0 R<min>`` line divided by ``speed``; failing that, from its length), following the
G-code's ``M73`` progress lines for the current line. ``fail_at`` makes the print fail at that
percentage. Printers live in a registry by device id, so a driver created again in the same
process (a restarted worker) finds the print still running.
"""

from __future__ import annotations

import re
import threading
import time
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

AMBIENT_C = 22.0
SECONDS_PER_LINE = 0.05  # simulated print time per G-code line when the file has no estimate
M73_RE = re.compile(r"^M73\s+P(\d+(?:\.\d+)?)(?:\s+R(\d+(?:\.\d+)?))?", re.IGNORECASE)
TEMP_RE = re.compile(r"^M(104|109|140|190)\b[^;]*?\bS(\d+(?:\.\d+)?)", re.IGNORECASE)


class SimState(StrEnum):
    IDLE = "idle"
    HEATING = "heating"
    PRINTING = "printing"
    PAUSED = "paused"
    ERROR = "error"


class SimOutcome(StrEnum):
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class SimulatedPrinterError(RuntimeError):
    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True)
class GcodeProfile:
    """What the simulator takes from a G-code file."""

    lines: int
    estimated_s: float
    nozzle_c: float
    bed_c: float
    progress_lines: tuple[tuple[float, int], ...]  # (percent, line number) from M73 P


def read_gcode(path: Path) -> GcodeProfile:
    lines = 0
    estimated: float | None = None
    temps = {"104": 0.0, "140": 0.0}
    marks: list[tuple[float, int]] = []
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for lines, raw in enumerate(handle, start=1):  # `lines` ends as the line count
            if not raw.startswith("M"):
                continue
            if match := M73_RE.match(raw):
                percent = float(match.group(1))
                marks.append((percent, lines))
                if estimated is None and match.group(2) is not None:
                    estimated = float(match.group(2)) * 60
            elif (match := TEMP_RE.match(raw)) is not None:
                kind = "104" if match.group(1) in ("104", "109") else "140"
                if not temps[kind]:
                    temps[kind] = float(match.group(2))
    return GcodeProfile(
        lines=lines,
        estimated_s=estimated if estimated else lines * SECONDS_PER_LINE,
        nozzle_c=temps["104"] or 200.0,
        bed_c=temps["140"] or 60.0,
        progress_lines=tuple(marks),
    )


@dataclass
class SimSnapshot:
    state: SimState
    online: bool
    job_name: str | None
    progress: float | None
    elapsed_s: float | None
    time_left_s: float | None
    current_line: int | None
    temperatures: dict[str, dict[str, float | None]]
    outcome: SimOutcome | None
    message: str | None


@dataclass
class SimulatedPrinter:
    device_id: str
    duration_s: float | None = None  # wall time of a print; None: the G-code's estimate / speed
    speed: float = 60.0  # how much faster than the slicer's estimate a print runs
    heat_s: float = 2.0
    fail_at: float | None = None  # percent at which a print fails
    clock: Callable[[], float] = time.monotonic
    online: bool = True
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _state: SimState = SimState.IDLE
    _job_name: str | None = None
    _gcode: GcodeProfile | None = None
    _print_s: float = 0.0  # printing time of the current job
    _started: float = 0.0  # clock at start
    _paused_total: float = 0.0
    _paused_since: float | None = None
    _outcome: SimOutcome | None = None
    _message: str | None = None
    _progress_at_end: float | None = None
    _ended_at: float | None = None

    # -- commands --------------------------------------------------------------------------

    def start(self, job_name: str, program: Path) -> None:
        with self._lock:
            self._advance()
            self._require_online()
            if self._state is SimState.ERROR:
                raise SimulatedPrinterError(f"the printer has an error: {self._message}", "error")
            if self._state is not SimState.IDLE:
                raise SimulatedPrinterError("the printer is already printing", "busy")
            gcode = read_gcode(program)
            self._gcode = gcode
            self._job_name = job_name
            self._print_s = (
                self.duration_s if self.duration_s is not None else (gcode.estimated_s / self.speed)
            )
            self._started = self.clock()
            self._paused_total = 0.0
            self._paused_since = None
            self._outcome = None
            self._message = None
            self._progress_at_end = None
            self._ended_at = None
            self._state = SimState.HEATING

    def pause(self) -> None:
        with self._lock:
            self._advance()
            self._require_online()
            if self._state not in (SimState.HEATING, SimState.PRINTING):
                raise SimulatedPrinterError("nothing is printing", "conflict")
            self._paused_since = self.clock()
            self._state = SimState.PAUSED

    def resume(self) -> None:
        with self._lock:
            self._advance()
            self._require_online()
            if self._state is not SimState.PAUSED or self._paused_since is None:
                raise SimulatedPrinterError("nothing is paused", "conflict")
            self._paused_total += self.clock() - self._paused_since
            self._paused_since = None
            self._state = SimState.HEATING  # _advance() moves on to PRINTING if heated
            self._advance()

    def cancel(self) -> None:
        with self._lock:
            self._advance()
            self._require_online()
            if self._state in (SimState.HEATING, SimState.PRINTING, SimState.PAUSED):
                self._end(SimOutcome.CANCELLED, SimState.IDLE, self._progress())

    def reset(self) -> None:
        """Staff cleared an error."""
        with self._lock:
            if self._state is SimState.ERROR:
                self._state = SimState.IDLE
                self._message = None

    def set_online(self, online: bool) -> None:
        with self._lock:
            self._advance()
            self.online = online

    # -- reading ---------------------------------------------------------------------------

    def snapshot(self) -> SimSnapshot:
        with self._lock:
            self._advance()
            running = self._state in (SimState.HEATING, SimState.PRINTING, SimState.PAUSED)
            progress = self._progress() if running else self._progress_at_end
            elapsed = self._active_time() if running else None
            return SimSnapshot(
                state=self._state,
                online=self.online,
                job_name=self._job_name,
                progress=progress,
                elapsed_s=elapsed,
                time_left_s=(self._print_s * (1 - (progress or 0) / 100)) if running else None,
                current_line=self._current_line(progress) if running else None,
                temperatures=self._temperatures(running),
                outcome=self._outcome,
                message=self._message,
            )

    # -- the simulation --------------------------------------------------------------------

    def _require_online(self) -> None:
        if not self.online:
            raise SimulatedPrinterError("the simulated printer is switched off", "offline")

    def _active_time(self) -> float:
        now = self._paused_since if self._paused_since is not None else self.clock()
        return max(0.0, now - self._started - self._paused_total)

    def _progress(self) -> float:
        printing = self._active_time() - self.heat_s
        if printing <= 0:
            return 0.0
        return min(100.0, 100.0 * printing / self._print_s) if self._print_s > 0 else 100.0

    def _advance(self) -> None:
        """Move the state on to what the clock says it is now."""
        if self._state not in (SimState.HEATING, SimState.PRINTING):
            return
        progress = self._progress()
        if self.fail_at is not None and progress >= self.fail_at:
            self._message = f"simulated failure at {self.fail_at:g} %"
            self._end(SimOutcome.FAILED, SimState.ERROR, self.fail_at)
        elif progress >= 100.0:
            self._end(SimOutcome.DONE, SimState.IDLE, 100.0)
        elif self._active_time() >= self.heat_s:
            self._state = SimState.PRINTING

    def _end(self, outcome: SimOutcome, state: SimState, progress: float) -> None:
        self._outcome = outcome
        self._state = state
        self._progress_at_end = progress
        self._ended_at = self.clock()
        self._paused_since = None

    def _current_line(self, progress: float | None) -> int | None:
        if self._gcode is None or progress is None:
            return None
        marks = self._gcode.progress_lines
        if not marks:
            return int(self._gcode.lines * progress / 100)
        index = bisect_right([percent for percent, _ in marks], progress) - 1
        return marks[max(index, 0)][1]

    def _temperatures(self, running: bool) -> dict[str, dict[str, float | None]]:
        nozzle = self._gcode.nozzle_c if self._gcode else 0.0
        bed = self._gcode.bed_c if self._gcode else 0.0
        if running and self._state is not SimState.PAUSED:
            share = min(1.0, self._active_time() / self.heat_s) if self.heat_s > 0 else 1.0
            return {
                "tool0": {"actual": AMBIENT_C + (nozzle - AMBIENT_C) * share, "target": nozzle},
                "bed": {"actual": AMBIENT_C + (bed - AMBIENT_C) * share, "target": bed},
            }
        if self._state is SimState.PAUSED:
            return {
                "tool0": {"actual": nozzle, "target": nozzle},
                "bed": {"actual": bed, "target": bed},
            }
        return {
            "tool0": {"actual": AMBIENT_C, "target": 0.0},
            "bed": {"actual": AMBIENT_C, "target": 0.0},
        }


_registry: dict[str, SimulatedPrinter] = {}
_registry_lock = threading.Lock()


def get_printer(device_id: str, **options: object) -> SimulatedPrinter:
    """The simulated printer of ``device_id``, created with ``options`` the first time."""
    with _registry_lock:
        printer = _registry.get(device_id)
        if printer is None:
            printer = SimulatedPrinter(device_id, **options)  # type: ignore[arg-type]
            _registry[device_id] = printer
        return printer


def forget_printer(device_id: str) -> None:
    """Drop a simulated printer (tests; a device deleted in the demo)."""
    with _registry_lock:
        _registry.pop(device_id, None)
