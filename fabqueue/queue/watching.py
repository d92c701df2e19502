"""Watching a running job: re-attaching after a restart, repairing a machine left busy, the
progress it reports, and how the job ended."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from sqlalchemy import select

from fabqueue import events
from fabqueue.core.devices import DeviceState
from fabqueue.core.jobs import JobStatus
from fabqueue.core.reasons import N_, reason
from fabqueue.drivers.base import MachineState, Outcome
from fabqueue.queue.device_base import DeviceWorkerBase
from fabqueue.queue.machines import (
    LEFT_BUSY,
    OUTCOME_STATUS,
    is_heating,
    job_name,
    ours,
    repaired_state,
)
from fabqueue.store.jobs import change_status, lock_job, record
from fabqueue.store.models import Device, Job

log = logging.getLogger("fabqueue.queue.device_worker")


class Watching(DeviceWorkerBase):
    """The machine's side of a job once it runs."""

    def reattach(self) -> None:
        """After a (re)start: find the job the database says this machine runs."""
        with self.ctx.db.session() as s:
            job_id = s.scalar(select(Job.id).where(Job.device_id == self.device_id,
                                                   Job.status == JobStatus.RUNNING))
        d = self._device()
        if job_id is None:
            if d.state in (DeviceState.OFFLINE, DeviceState.ERROR, *LEFT_BUSY):
                self.repair(d)
            return
        assert self.driver is not None
        st = self.driver.find(job_name(job_id))
        if st is None:
            self.finish(job_id, Outcome.INTERRUPTED,
                        reason("job_unknown_to_machine", N_(
                            "the machine does not know this job any more (it was restarted?)")))
            return
        log.info("%s: re-attached to job %s", self.device_id, job_id)
        self.job_id = job_id
        with self.ctx.db.session() as s:
            self.lease.fence(s)
            job = s.get(Job, job_id)
            if job is not None:
                record(s, job, "reattached", data={"device": self.device_id})
        self._set_device(state=DeviceState.BUSY.value, current_job_id=job_id, state_reason=None)

    def repair(self, d: Device) -> None:
        """The row says busy (or we don't know) but no job of ours runs here: what the
        machine itself reports wins, so a machine is never left stuck on a finished job."""
        assert self.driver is not None
        st = self.driver.status()
        # a printer that was busy, or ran a job whose end we did not see, may hold a print
        bed = bool(d.current_job_id) or d.state in LEFT_BUSY
        state, why = repaired_state(self.kind, st.state, bed, st.message,
                                    ours=ours(st.job_name))
        if (state.value, why) != (d.state, d.state_reason):
            self._set_device(state=state.value, state_reason=why)

    def watch(self, force_outcome: Outcome | None = None, reason: str | None = None) -> None:
        assert self.driver is not None and self.job_id is not None
        st = self.driver.status()
        self.last_progress_write = time.monotonic()
        self.ending_soon = (st.progress or 0) >= 95 or (
            st.time_left_s is not None and st.time_left_s <= 2 * self.poll_s)
        if st.state == MachineState.OFFLINE and force_outcome is None:
            self.lost(st.message or reason("stopped_answering",
                                           N_("the machine stopped answering")))
            return
        outcome = force_outcome or st.outcome
        if outcome is None and st.state == MachineState.ERROR:
            outcome = Outcome.FAILED
        if outcome is not None:
            self.finish(self.job_id, outcome, st.message or reason)
            return
        heating = is_heating(st.temperatures, st.extra)
        state = (DeviceState.PAUSED if st.state == MachineState.PAUSED
                 else DeviceState.HEATING if heating else DeviceState.BUSY)
        self._set_device(state=state.value, progress=st.progress, time_left_s=st.time_left_s,
                         temperatures=st.temperatures or {}, state_reason=None)
        events.publish(events.DEVICE_PROGRESS, {
            "device": self.device_id, "site": self.site, "job": self.job_id,
            "progress": st.progress, "time_left_s": st.time_left_s, "elapsed_s": st.elapsed_s,
            "lines_acked": st.extra.get("lines_acked"), "lines_total": st.extra.get("lines_total"),
            "temperatures": st.temperatures, "state": state.value})

    def lost(self, reason: str) -> None:
        """The link dropped: the job is interrupted (never restarted by itself)."""
        if self.job_id is not None:
            self.finish(self.job_id, Outcome.INTERRUPTED, reason, device_state=None)
        self.drop_connection(reason)

    def finish(self, job_id: int, outcome: Outcome, reason: str | None,
               device_state: DeviceState | bool | None = True) -> None:
        target = OUTCOME_STATUS[outcome]
        with self.ctx.db.session() as s:
            self.lease.fence(s)
            job = lock_job(s, job_id)
            if job is not None and job.status == JobStatus.RUNNING:
                now = datetime.now(UTC)
                started = job.started_at.replace(tzinfo=UTC) if job.started_at else now
                job.actual_seconds = (now - started).total_seconds()
                change_status(s, job, target, reason=reason, action=f"ended_{outcome.value}",
                              data={"device": self.device_id,
                                    "seconds": round(job.actual_seconds, 1)})
                # its grams come off the loaded spool in the same commit, once (ledger)
                from fabqueue.queue.spool_gate import take_off_spool

                progress = s.scalar(select(Device.progress).where(
                    Device.id == self.device_id))
                take_off_spool(s, self.ctx.settings, job, self.device_id, outcome.value,
                               progress)
        self.job_id = None
        self.stopped_by_operator = False
        if device_state is None:
            return
        after = DeviceState.NEEDS_BED_CLEAR if self.kind == "printer" else DeviceState.IDLE
        self._set_device(state=after.value, progress=None, time_left_s=None,
                         current_job_id=job_id if self.kind == "printer" else None,
                         state_reason=reason if outcome != Outcome.DONE else None)
        log.info("%s: job %s ended %s", self.device_id, job_id, outcome.value)
