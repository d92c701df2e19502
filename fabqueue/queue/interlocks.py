"""The interlocks before a start: a printer waits for staff to confirm its bed is clear and
for the site's heating limit; a laser only offers its next job and starts it when the
operator at it confirmed the checklist (with a frame run first, if asked)."""

from __future__ import annotations

import time

from fabqueue.core import reasons
from fabqueue.core.devices import DeviceState
from fabqueue.core.jobs import JobStatus
from fabqueue.core.scheduling import may_start_heating
from fabqueue.drivers.base import MachineState
from fabqueue.queue.device_base import DeviceWorkerBase
from fabqueue.queue.gate import machine_blocked
from fabqueue.queue.laser_ops import CONFIRMATION_EXPIRED, frame_busy
from fabqueue.queue.machines import LEFT_BUSY
from fabqueue.store.models import Device, Job
from fabqueue.store.queries import heating_at


class Interlocks(DeviceWorkerBase):
    """When a machine may start, and who must say so."""

    def look_for_work(self) -> None:
        d = self._device()
        if not d.enabled:
            return
        if d.state == DeviceState.NEEDS_BED_CLEAR:
            self.prestage(d)  # an upload at most: nothing starts before staff confirm
            return  # the interlock: staff must confirm the bed is clear
        if d.state in (DeviceState.OFFLINE, DeviceState.ERROR) and self.driver is not None:
            st = self.driver.status()
            if st.state == MachineState.IDLE:
                self._set_device(state=DeviceState.IDLE.value, state_reason=None)
            return
        if d.state in LEFT_BUSY and self.job_id is None:
            self.repair(d)  # e.g. a print nobody tracks ended: the machine is free again
            return
        if machine_blocked(self):  # out of order or maintenance due: no new job (issue 17)
            return
        if self.kind == "laser":
            self.offer_to_operator(d)
            return
        if d.state != DeviceState.IDLE or not self.queued():
            return  # (a look with nothing queued is for the gate's and the repairs' sake)
        with self.ctx.db.session() as s:
            heating = heating_at(s, self.site, but=self.device_id)
        if not may_start_heating(heating, self.ctx.settings.max_heating_per_site):
            return  # a cheap look first; start_job decides under the site's lock
        cand = self.next_job(d)
        if cand is None:
            return
        if self.driver.status().state != MachineState.IDLE:
            self.repair(d)  # not free after all (a print we did not start): it wins; no job
            return
        self.start_job(cand.job_id)

    def offer_to_operator(self, d: Device) -> None:
        """Show the next ready job as waiting for the operator; never start it alone."""
        if d.state not in (DeviceState.IDLE, DeviceState.AWAITING_OPERATOR):
            return
        cand = self.next_job(d)
        if cand is None:
            if d.state == DeviceState.AWAITING_OPERATOR or d.current_job_id:
                self._set_device(state=DeviceState.IDLE.value, current_job_id=None)
            return
        if d.state != DeviceState.AWAITING_OPERATOR or d.current_job_id != cand.job_id:
            # another job offered: a reason about the last offer no longer applies; one
            # about this offer (an expired confirmation) or the last run stays until a start
            fresh = d.current_job_id not in (None, cand.job_id)
            self._set_device(state=DeviceState.AWAITING_OPERATOR.value,
                             current_job_id=cand.job_id,
                             **({"state_reason": None} if fresh else {}))
        conf = d.confirmation or {}
        if conf and conf.get("expires", 0) < time.time():
            self._set_device(confirmation=None, state_reason=CONFIRMATION_EXPIRED)

    def operator_start(self, job_id: int) -> None:
        d = self._device()
        conf = d.confirmation or {}
        if conf.get("job") != job_id or conf.get("expires", 0) < time.time():
            self._set_device(confirmation=None, state_reason=CONFIRMATION_EXPIRED)
            return
        if self.job_id is not None:
            return
        if machine_blocked(self, fresh=True):  # the reason is on the board; nothing starts
            return
        if frame_busy(self.driver):
            self.frames.hold_start(self, job_id)  # GRBL would refuse it as busy
            return
        self.start_confirmed(job_id)

    def start_confirmed(self, job_id: int) -> None:
        """Start a job the operator confirmed (now, or once the frame run ended)."""
        with self.ctx.db.session() as s:
            job = s.get(Job, job_id)
            ok = job is not None and job.status == JobStatus.READY
        if not ok or not self.start_job(job_id):
            self._set_device(confirmation=None, state_reason=reasons.reason(
                "job_not_waiting", reasons.N_("Job {job} is not waiting at this laser."),
                job=job_id))

    def frame(self, job_id: int) -> None:
        from fabqueue.laser.gcode import frame_program
        from fabqueue.store.specs import laser_spec

        with self.ctx.db.session() as s:
            job = s.get(Job, job_id)
            bbox = (job.slice_result or {}).get("bbox") if job else None
            laser = laser_spec(s.get(Device, self.device_id))  # type: ignore[arg-type]
        if not bbox or self.job_id is not None:
            return
        program = frame_program(tuple(bbox), min(3000.0, laser.max_speed_mm_min), laser=laser)
        self.driver.run_frame(program.lines)  # type: ignore[union-attr]
        self.frames.started(self)
