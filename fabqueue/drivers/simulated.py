"""Driver for the simulated printer (demo and queue tests); every status says it is simulated."""

from __future__ import annotations

import re
from pathlib import Path

from fabqueue.core.reasons import N_, reason
from fabqueue.drivers.base import DriverError, DriverOffline, MachineState, MachineStatus, Outcome
from fabqueue.simulators.printer import (
    SimState,
    SimulatedPrinter,
    SimulatedPrinterError,
    get_printer,
)

STATES = {
    SimState.IDLE: MachineState.IDLE,
    SimState.HEATING: MachineState.RUNNING,
    SimState.PRINTING: MachineState.RUNNING,
    SimState.PAUSED: MachineState.PAUSED,
    SimState.ERROR: MachineState.ERROR,
}

#: The simulator's own words (English, it is a test machine) as translatable reasons.
SIM_REASONS = {
    "the printer is already printing": ("already_printing", N_(
        "the printer is already printing something")),
    "nothing is printing": ("nothing_printing", N_("nothing is printing")),
    "nothing is paused": ("nothing_paused", N_("nothing is paused")),
    "the simulated printer is switched off": ("sim_switched_off", N_(
        "the simulated printer is switched off")),
}
SWITCHED_OFF = reason(*SIM_REASONS["the simulated printer is switched off"])
HEATING = reason("heating", N_("heating"))
ERROR_PREFIX = "the printer has an error: "
SIM_FAILURE = re.compile(r"simulated failure at (\S+) %")


def sim_reason(text: str) -> str:
    """The simulator's message as a stored reason (unknown text is kept as a parameter)."""
    if text in SIM_REASONS:
        return reason(*SIM_REASONS[text])
    if m := SIM_FAILURE.fullmatch(text):
        return reason("sim_failure", N_("simulated failure at {percent} %"),
                      percent=m.group(1))
    if text.startswith(ERROR_PREFIX):
        return reason("printer_error", N_("the printer has an error: {error}"),
                      error=sim_reason(text[len(ERROR_PREFIX):]))
    return reason("machine_says", N_("the machine says: {said}"), said=text)


class SimulatedPrinterDriver:
    """Drives the simulated printer registered under ``device_id`` (created on first use).

    Options (``duration_s``, ``speed``, ``heat_s``, ``fail_at``) apply when the printer is
    first created; a driver made again for the same device re-attaches to the same printer.
    """

    def __init__(self, device_id: str, *, laser_max_s: float | None = None,
                 **options: object) -> None:
        self.device_id = device_id
        self.printer: SimulatedPrinter = get_printer(device_id, **options)
        # A simulated laser answers like a GRBL set up for it (laser mode, S scaled to the
        # configured maximum): the worker checks these before a laser may start, and an empty
        # answer left the demo's laser in error with "$32=None".
        self.settings: dict[int, float] = (
            {} if laser_max_s is None else {32: 1.0, 30: float(laser_max_s)})

    def _do(self, action: str) -> None:
        try:
            getattr(self.printer, action)()
        except SimulatedPrinterError as exc:
            raise self._error(exc) from exc

    @staticmethod
    def _error(exc: SimulatedPrinterError) -> DriverError:
        if exc.code == "offline":
            return DriverOffline(sim_reason(exc.reason))
        return DriverError(sim_reason(exc.reason), code=exc.code)

    def connect(self) -> None:
        if not self.printer.online:
            raise DriverOffline(SWITCHED_OFF)

    def close(self) -> None:
        """Nothing to release: the printer lives on in the registry."""

    def status(self) -> MachineStatus:
        snap = self.printer.snapshot()
        extra: dict[str, object] = {"simulated": True, "sim_state": snap.state.value}
        if snap.current_line is not None:
            extra["line"] = snap.current_line
        if not snap.online:
            return MachineStatus(state=MachineState.OFFLINE, job_name=snap.job_name,
                                 message=SWITCHED_OFF, extra=extra)
        return MachineStatus(
            state=STATES[snap.state],
            job_name=snap.job_name,
            progress=snap.progress,
            time_left_s=snap.time_left_s,
            elapsed_s=snap.elapsed_s,
            temperatures=snap.temperatures,
            message=sim_reason(snap.message) if snap.message
            else HEATING if snap.state is SimState.HEATING else None,
            outcome=Outcome(snap.outcome.value) if snap.outcome else None,
            extra=extra,
        )

    def start(self, job_name: str, program: Path) -> None:
        try:
            self.printer.start(job_name, program)
        except SimulatedPrinterError as exc:
            raise self._error(exc) from exc

    def find(self, job_name: str) -> MachineStatus | None:
        status = self.status()
        return status if status.job_name == job_name else None

    def pause(self) -> None:
        self._do("pause")

    def resume(self) -> None:
        self._do("resume")

    def cancel(self) -> None:
        self._do("cancel")
