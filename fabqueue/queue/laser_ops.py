"""The operator's frame run and start at a laser, as the device worker carries them out.

A frame run occupies the controller for a few seconds. A "Start" pressed during it must not
reach the driver (GRBL would refuse it as busy, and the job would flip to ``interrupted`` and
back, telling its owner something false): the start is held and carried out once the frame is
traced. The board learns of both through the device's ``state_reason`` (a translatable code).
"""

from __future__ import annotations

from typing import Any

from fabqueue.core.reasons import N_, reason
from fabqueue.drivers.base import Driver

FRAME_JOB = "frame"  # the driver's name for a frame run (see GrblDriver.run_frame)

FRAME_RUNNING = reason("frame_running", N_("Tracing the frame with the laser off…"))
FRAME_DONE = reason("frame_done", N_("The frame is traced."))
CONFIRMATION_EXPIRED = reason("confirmation_expired", N_(
    "The operator's confirmation expired; confirm the checklist again at the laser."))
START_AFTER_FRAME = reason("start_after_frame", N_(
    "The job starts as soon as the frame is traced."))


def frame_busy(driver: Driver | None) -> bool:
    """True while the controller is still tracing a frame."""
    if driver is None:
        return False
    st = driver.status()
    return st.job_name == FRAME_JOB and st.outcome is None


class FrameTracker:
    """What the worker remembers between steps: a frame in progress, a start held for it."""

    def __init__(self) -> None:
        self.running = False
        self.held_start: int | None = None

    def started(self, worker: Any) -> None:
        self.running = True
        _say(worker, FRAME_RUNNING)

    def hold_start(self, worker: Any, job_id: int) -> None:
        self.held_start = job_id
        _say(worker, START_AFTER_FRAME)

    def tick(self, worker: Any) -> bool:
        """Called each step while no job runs. True when the step is spent (frame running)."""
        if not self.running and self.held_start is None:
            return False
        if frame_busy(worker.driver):
            return True
        self.running = False
        job_id, self.held_start = self.held_start, None
        if job_id is None:
            _say(worker, FRAME_DONE)
            return False
        worker.start_confirmed(job_id)
        return True

    def cancel(self, worker: Any) -> None:
        """STOP during a frame run: forget it and the held start, and stop saying so."""
        busy = self.running or self.held_start is not None
        self.running = False
        self.held_start = None
        if busy:
            _say(worker, None)


def _say(worker: Any, text: str | None) -> None:
    d = worker._device()
    worker._set_device(state=d.state, state_reason=text)
