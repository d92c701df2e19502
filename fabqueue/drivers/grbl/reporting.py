"""What a GRBL driver tells: its status (state, progress, time left, the link's counters)
and its events (``laser:state``, ``laser:progress``). A mixin of
:class:`~fabqueue.drivers.grbl.driver.GrblDriver`, reading the state its reader keeps."""

from __future__ import annotations

import logging
import time

from fabqueue.drivers.base import MachineState, MachineStatus
from fabqueue.drivers.grbl.codes import alarm_meaning
from fabqueue.drivers.grbl.jobs import StreamJob

log = logging.getLogger("fabqueue.drivers.grbl.driver")


class Reporting:
    """Status and events, from what the reader and the streamer recorded."""

    def find(self, job_name: str) -> MachineStatus | None:
        """The status of ``job_name`` if this driver instance runs (or just ran) it."""
        with self._cv:
            if self._job is None or self._job.name != job_name:
                return None
        return self.status()

    def _machine_state(self) -> MachineState:
        job = self._job
        if self._offline_reason is not None:
            return MachineState.OFFLINE
        if self._alarm is not None or self._grbl_state == "Alarm":
            return MachineState.ERROR
        if self._paused:
            return MachineState.PAUSED
        if (job is not None and job.outcome is None) or self._grbl_state in ("Run", "Jog", "Home"):
            return MachineState.RUNNING
        return MachineState.IDLE

    def status(self) -> MachineStatus:
        with self._cv:
            job = self._job
            state = self._machine_state()
            extra: dict[str, object] = {
                "grbl_state": self._grbl_state,
                "position": list(self._position),
            }
            if self._buffer is not None:
                extra["planner_blocks_free"], extra["rx_bytes_free"] = self._buffer
            if job is None:
                message = self._offline_reason if state is MachineState.OFFLINE else None
                if self._alarm is not None:
                    message = f"ALARM:{self._alarm}: {alarm_meaning(self._alarm)}"
                return MachineStatus(state, message=message, extra=extra)
            total = len(job.lines)
            elapsed = (job.ended or time.monotonic()) - job.started
            extra.update(
                lines_acked=job.acked, lines_total=total, max_unacked_bytes=job.max_in_flight,
                lost_replies=job.lost_replies, noise_lines=self.noise_lines,
            )
            return MachineStatus(
                state,
                job_name=job.name,
                progress=100.0 * self._lines_done(job) / total if total else 100.0,
                elapsed_s=elapsed,
                time_left_s=self._time_left(job, elapsed, self._lines_done(job)),
                message=job.message,
                outcome=job.outcome,
                extra=extra,
            )

    def _lines_done(self, job: StreamJob) -> int:
        """Lines that have run: GRBL answers a move when it is planned, up to 15 blocks
        before it runs, so the blocks still queued (``Bf:``) are not done yet."""
        if job.outcome is not None or self._buffer is None:
            return job.acked
        queued = max(0, self._window.planner_blocks - self._buffer[0])
        return max(0, job.acked - queued)

    @staticmethod
    def _time_left(job: StreamJob, elapsed: float, done: int) -> float | None:
        if job.outcome is not None:
            return 0.0
        if job.line_seconds is not None:
            planned_done = sum(job.line_seconds[:done])
            planned_left = sum(job.line_seconds[done:])
            rate = elapsed / planned_done if planned_done > 0 else 1.0
            return planned_left * rate
        if done == 0:
            return None
        return elapsed * (len(job.lines) - done) / done

    # == events ==============================================================================
    def _emit(self, name: str, payload: dict[str, object]) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(name, payload)
        except Exception:  # a broken subscriber must not stop the laser's stream
            log.exception("GRBL on_event callback failed")

    def _emit_state(self) -> None:
        with self._cv:
            key = (self._machine_state().value, self._grbl_state)
            if key == self._last_event:
                return
            self._last_event = key
            job = self._job
        self._emit(
            "laser:state",
            {"state": key[0], "grbl_state": key[1], "job": job.name if job else None},
        )

    def _emit_progress(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_progress_event < 0.5:
            return
        self._last_progress_event = now
        job = self._job
        if job is None:
            return
        total = len(job.lines)
        self._emit(
            "laser:progress",
            {
                "job": job.name,
                "progress": 100.0 * self._lines_done(job) / total if total else 100.0,
                "lines_acked": job.acked,
                "lines_total": total,
                "outcome": job.outcome.value if job.outcome else None,
            },
        )
