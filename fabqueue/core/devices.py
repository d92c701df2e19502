"""The device state machine: what a printer or laser is doing, as FabQueue sees it."""

from __future__ import annotations

from enum import StrEnum


class DeviceKind(StrEnum):
    PRINTER = "printer"
    LASER = "laser"


class DriverName(StrEnum):
    OCTOPRINT = "octoprint"
    GRBL = "grbl"
    SIMULATED = "simulated"


class DeviceState(StrEnum):
    OFFLINE = "offline"  # not reachable; its waiting jobs stay queued
    IDLE = "idle"  # reachable, bed clear, can take a job
    BUSY = "busy"  # running a job
    PAUSED = "paused"  # a job is held (feed hold / OctoPrint pause)
    NEEDS_BED_CLEAR = "needs_bed_clear"  # a print ended; staff must confirm the bed is clear
    AWAITING_OPERATOR = "awaiting_operator"  # laser: a ready job waits for staff at the laser
    HEATING = "heating"  # printer: started, waiting for its turn to heat (staggered start)
    ERROR = "error"  # the machine reported an error (alarm, firmware error); needs staff
    DISABLED = "disabled"  # taken out of service by staff


#: States in which a device may be given a new job.
ACCEPTS_JOBS: frozenset[DeviceState] = frozenset({DeviceState.IDLE, DeviceState.AWAITING_OPERATOR})

#: States in which a machine is running something and so must offer a working stop.
RUNNING: frozenset[DeviceState] = frozenset(
    {DeviceState.BUSY, DeviceState.PAUSED, DeviceState.HEATING}
)
