"""Maintenance: how far a machine is into each service interval, from its own job history.

A task is due after any of its limits (machine hours, jobs, days, filament metres): the
first one reached wins. At 90 % it is ``due_soon`` (staff are told); at 100 % ``due`` (the
machine takes no new job until staff record the task done). Counters come from FabQueue's
history, never from a host's totals, which its owner may reset.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from fabqueue.core.findings import N_

DUE_SOON_AT = 0.9


class TaskState(StrEnum):
    OK = "ok"
    DUE_SOON = "due_soon"
    DUE = "due"


@dataclass(frozen=True)
class Interval:
    every_hours: float | None = None
    every_jobs: int | None = None
    every_days: float | None = None
    every_filament_m: float | None = None

    def limits(self) -> dict[str, float]:
        return {k: float(v) for k, v in (("hours", self.every_hours), ("jobs", self.every_jobs),
                                         ("days", self.every_days),
                                         ("filament_m", self.every_filament_m))
                if v is not None and v > 0}


@dataclass(frozen=True)
class Counters:
    """Since the task was last done: machine hours (printing, or beam on for lasers), jobs
    run, days passed and filament metres used."""
    hours: float = 0.0
    jobs: int = 0
    days: float = 0.0
    filament_m: float = 0.0


@dataclass(frozen=True)
class Status:
    state: TaskState
    fraction: float  # of the nearest limit (1.0 = due)
    counter: str | None  # which limit is nearest: hours | jobs | days | filament_m


def status(interval: Interval, counters: Counters) -> Status:
    best, which = 0.0, None
    for name, limit in interval.limits().items():
        frac = float(getattr(counters, name)) / limit
        if which is None or frac > best:
            best, which = frac, name
    if best >= 1.0:
        state = TaskState.DUE
    elif best >= DUE_SOON_AT:
        state = TaskState.DUE_SOON
    else:
        state = TaskState.OK
    return Status(state, round(best, 4), which)


@dataclass(frozen=True)
class Template:
    name: str  # English msgid; a lab's own name in the devices file wins
    kinds: tuple[str, ...]
    interval: Interval


#: Tasks a lab names by id in the devices file (``template = "nozzle"``, or an id that is
#: one of these), with intervals a busy school lab would start from.
TEMPLATES: dict[str, Template] = {
    "nozzle": Template(N_("Check or change the nozzle"), ("printer",),
                       Interval(every_hours=500, every_filament_m=5000)),
    "build_plate": Template(N_("Clean the build plate"), ("printer",),
                            Interval(every_jobs=50, every_days=30)),
    "belts": Template(N_("Check the belt tension"), ("printer",),
                      Interval(every_hours=300, every_days=90)),
    "lens": Template(N_("Clean the lens"), ("laser",), Interval(every_hours=20, every_days=30)),
    "mirrors": Template(N_("Clean and align the mirrors"), ("laser",),
                        Interval(every_hours=40, every_days=60)),
    "fume_filter": Template(N_("Change the fume filter"), ("laser",),
                            Interval(every_hours=100, every_days=180)),
    "tube_hours": Template(N_("Check the laser tube"), ("laser",),
                           Interval(every_hours=1000)),
}
