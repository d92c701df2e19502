"""The one protocol every machine driver speaks.

A driver talks to one machine. It never touches the database, Redis or the web: the device
worker (``fabqueue.queue.device_worker``) calls it and turns what it returns into job and
device state changes. ``start`` never blocks for the length of a job: OctoPrint runs the
print itself, and the GRBL driver streams from a background thread; the worker polls
``status()`` about once a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol, runtime_checkable


class MachineState(StrEnum):
    """What the machine itself reports, before FabQueue's interlocks are applied."""

    OFFLINE = "offline"  # unreachable or disconnected
    IDLE = "idle"  # connected, nothing running
    RUNNING = "running"  # a job is running (printing, streaming, heating)
    PAUSED = "paused"  # held
    ERROR = "error"  # alarm / firmware error; `message` says which


class Outcome(StrEnum):
    """How the last job on the machine ended."""

    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # the link to the machine was lost mid-job


@dataclass
class MachineStatus:
    state: MachineState
    job_name: str | None = None  # the file/job name the machine is working on
    progress: float | None = None  # 0..100
    time_left_s: float | None = None
    elapsed_s: float | None = None
    temperatures: dict[str, dict[str, float | None]] = field(default_factory=dict)
    message: str | None = None
    outcome: Outcome | None = None  # set once when a job has ended, until the next start
    extra: dict[str, object] = field(default_factory=dict)


class DriverError(RuntimeError):
    """A machine refused or failed a request; `reason` is for staff, preferably encoded with
    :func:`fabqueue.core.reasons.reason` so each reader sees it in their language."""

    def __init__(self, reason: str, *, code: str = "error") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class DriverOffline(DriverError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason, code="offline")


@runtime_checkable
class Driver(Protocol):
    """One machine. Implementations: octoprint.py, moonraker.py, prusalink.py, bambu.py,
    grbl/, simulated.py."""

    def connect(self) -> None:
        """Open the link; raise DriverOffline when the machine can't be reached."""

    def close(self) -> None: ...

    def status(self) -> MachineStatus:
        """Poll the machine once (cheap; called about once a second)."""

    def start(self, job_name: str, program: Path) -> None:
        """Send ``program`` (G-code) under ``job_name`` and start it. Does not block."""

    def find(self, job_name: str) -> MachineStatus | None:
        """If the machine is running (or just ran) ``job_name``, its status: used to
        re-attach after a worker restart instead of starting a job twice."""

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def cancel(self) -> None:
        """Stop the running job (a print is cancelled; a laser is soft-reset at once)."""


@runtime_checkable
class Stages(Protocol):
    """A driver that can put a program on the machine ahead of its start (a file host).

    The device worker stages the next job's program while the bed waits to be cleared, or
    else while the database decides whether this machine gets the job, so the start does
    not wait for the upload (``queue.staging``). ``stage`` may run in a thread of its own
    beside ``status`` and the commands (each host's upload has a connection of its own). Staging
    never makes a machine move: only ``start`` does, and only after the claim's commit; a
    program staged for a job the machine did not get just lies on its storage.
    """

    def stage(self, job_name: str, program: Path) -> None:
        """Upload ``program`` under ``job_name`` without starting it; the next ``start``
        of the same job and program skips its upload. Raises DriverError."""
