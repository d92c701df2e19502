"""Taking work: the ready jobs a machine may run (its own queue, then its pool, fairly), and
the one transaction that claims a job and starts it; a refused start puts the job back."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rq import Queue
from sqlalchemy import func, select

from fabqueue import events
from fabqueue.core.devices import DeviceState
from fabqueue.core.jobs import JobStatus
from fabqueue.core.scheduling import Candidate, MachineCaps, may_start_heating, pick
from fabqueue.drivers.base import DriverError, DriverOffline, Stages
from fabqueue.queue.device_base import DeviceWorkerBase
from fabqueue.queue.machines import job_name
from fabqueue.queue.pipeline import dispatch_entry_id
from fabqueue.queue.refusal import restore_ready
from fabqueue.queue.staging import Staging
from fabqueue.store.jobs import claim_ready, lock_job, queue_event
from fabqueue.store.models import Device, Job
from fabqueue.store.queries import heating_at, lock_site

log = logging.getLogger("fabqueue.queue.device_worker")

FAIR_SHARE_WINDOW = timedelta(hours=24)  # starts counted for fairness between owners
PRESTAGE_EVERY_S = 5.0  # at needs_bed_clear, the next job is picked again this often


class Claiming(DeviceWorkerBase):
    """Which job next, and claiming it once, whoever else reaches for it."""

    # Here, not in the base: staging builds on the base, so the base must not know it.
    _prestaged: Staging | None = None  # the job picked while the bed waits
    _prestage_at = 0.0  # when that pick was last made (monotonic)

    def candidates(self, queue_name: str) -> list[Candidate]:
        q = Queue(queue_name, connection=self.ctx.redis)
        ids = [int(e.split("-", 1)[1]) for e in q.get_job_ids() if e.startswith("run-")]
        if not ids:
            return []
        with self.ctx.db.session() as s:
            jobs = list(s.scalars(select(Job).where(Job.id.in_(ids))))
        out = []
        for j in jobs:
            if j.status != JobStatus.READY:
                self.ctx.redis.lrem(q.key, 0, dispatch_entry_id(j.id))  # stale entry
                continue
            out.append(Candidate(j.id, j.owner_id, j.batch_id, j.material_id, j.priority,
                                 tuple((j.analysis or {}).get("fits") or ()),
                                 j.pinned_device_id,
                                 (j.slice_result or {}).get("estimated_seconds")))
        return out

    def recent_starts(self) -> dict[str, int]:
        since = datetime.now(UTC) - FAIR_SHARE_WINDOW
        with self.ctx.db.session() as s:
            rows = s.execute(select(Job.owner_id, Job.batch_id, func.count()).where(
                Job.site_id == self.site, Job.started_at >= since).group_by(
                Job.owner_id, Job.batch_id)).all()
        out: dict[str, int] = {}
        for owner, batch, n in rows:
            key = f"batch:{batch}" if batch else f"owner:{owner}"
            out[key] = out.get(key, 0) + int(n)
        return out

    def next_job(self, d: Device) -> Candidate | None:
        caps = MachineCaps(d.id, tuple(d.materials or ()), d.loaded_material)
        own, pool = self.candidates(self.own), self.candidates(self.pool)
        if not own and not pool:
            return None  # nothing to pick: no fair-share query (a laser looks often)
        held = self.held_for_filament(d, [c.job_id for c in (*own, *pool)])
        if held:  # they wait (filament_low); another machine of the pool may take them
            own = [c for c in own if c.job_id not in held]
            pool = [c for c in pool if c.job_id not in held]
        return pick(own, pool, caps, self.recent_starts())

    def held_for_filament(self, d: Device, job_ids: list[int]) -> set[int]:
        """Jobs the spool loaded here is too light for (:mod:`~fabqueue.queue.spool_gate`)."""
        if d.spool_id is None or not job_ids:
            return set()
        from fabqueue.queue.spool_gate import held_for_filament

        with self.ctx.db.session() as s:
            return held_for_filament(s, d, job_ids)

    def claim(self, job_id: int) -> bool:
        """Take the job's entry off whichever queue holds it (after the database claim in
        ``start_job``, which is what decides who runs a job)."""
        entry = dispatch_entry_id(job_id)
        for name in (self.own, self.pool):
            if self.ctx.redis.lrem(Queue(name, connection=self.ctx.redis).key, 1, entry):
                self.ctx.redis.delete(f"rq:job:{entry}")
                return True
        return False

    def prestage(self, d: Device) -> None:
        """While the bed waits to be cleared, send the program of the job this machine
        would pick now to a file host, one upload at a time (see
        :mod:`~fabqueue.queue.staging`). Never a start: that waits for the bed-clear."""
        driver = self.driver
        if not isinstance(driver, Stages) or not self.ctx.settings.prestage:
            return
        pre = self._prestaged if self._prestaged and self._prestaged.driver is driver else None
        if pre is not None and pre.running:
            return
        if time.monotonic() - self._prestage_at < PRESTAGE_EVERY_S:
            return
        self._prestage_at = time.monotonic()
        cand = self.next_job(d)
        if cand is None or (pre is not None and pre.ok and pre.job_id == cand.job_id):
            return  # nothing waits, or its program is on the machine already
        self._prestaged = Staging(self, cand.job_id, driver)

    def _staging_for(self, job_id: int) -> Staging | None:
        """The job's program on its way now, or None when it is on the machine already
        (pre-staged) or the machine is no file host."""
        pre, self._prestaged, self._prestage_at = self._prestaged, None, 0.0
        if pre is not None and pre.driver is self.driver:
            pre.join()  # one upload at a time through the driver
            if pre.ok and pre.job_id == job_id:
                return None
        return Staging.begin(self, job_id)

    def start_job(self, job_id: int) -> bool:
        """Claim the job and start it; False when another machine won it, or the site's
        heating limit is reached. The start follows the claim's commit; a file host
        receives the program meanwhile, unless it did while the bed waited to be cleared
        (:mod:`~fabqueue.queue.staging`)."""
        assert self.driver is not None
        from fabqueue.queue.gate import machine_blocked

        if machine_blocked(self, fresh=True):  # the start gate, asked once more at the start
            return False
        staging = self._staging_for(job_id)
        try:
            claimed = self._claim_in_db(job_id)
        finally:
            if staging is not None:
                staging.join()  # the driver is used by one thread at a time
        if claimed is None:
            return False
        program, timing = claimed
        try:
            self.claim(job_id)  # its queue entry is only a hint now: the database decided
        except Exception:  # Redis away: a stale entry is dropped by whoever reads it next
            log.warning("%s: could not drop the queue entry of job %s", self.device_id, job_id)
        self.job_id = job_id
        try:
            if timing and self.kind == "laser":
                seconds = json.loads(self.ctx.files.path(timing).read_text())
                self.driver.start(job_name(job_id), program,  # type: ignore[call-arg]
                                  line_seconds=seconds)
            else:
                self.driver.start(job_name(job_id), program)
        except DriverOffline as exc:
            self.lost(exc.reason)
        except DriverError as exc:
            self.refused_start(job_id, exc)
        return True

    def _claim_in_db(self, job_id: int) -> tuple[Path, str | None] | None:
        """One transaction decides: the site's lock (printers), the heating count, the job's
        conditional claim (ready, on no machine) and the fenced machine row. The job's
        program and line timings, or None when the job is not this machine's to start."""
        state = (DeviceState.HEATING if self.kind == "printer" else DeviceState.BUSY).value
        with self.ctx.db.session() as s:
            if self.kind == "printer":
                lock_site(s, self.site)
                if not may_start_heating(heating_at(s, self.site, but=self.device_id),
                                         self.ctx.settings.max_heating_per_site):
                    return None
            # a refused start puts the job back as it was, its earlier start time included
            started_before = s.scalar(select(Job.started_at).where(Job.id == job_id))
            job = claim_ready(s, job_id, self.device_id)
            if job is None:
                return None  # another machine took it first
            self._started_at_before[job_id] = started_before
            program = self.ctx.files.path(job.program_sha256 or "")
            timing = (job.slice_result or {}).get("line_seconds_sha256")
            # the machine's row changes in the same transaction: one commit before the start
            self.lease.fence(s, state=state, current_job_id=job_id, progress=0.0,
                             state_reason=None, confirmation=None, seen_at=datetime.now(UTC))
            queue_event(s, events.DEVICE_STATE, {"device": self.device_id, "site": self.site,
                                                 "state": state, "job": job_id})
        return program, timing

    def refused_start(self, job_id: int, exc: DriverError) -> None:
        """The machine refused to start (busy, not in laser mode …): the job waits again, as
        it was. Nothing ran, so nothing was interrupted: no ``interrupted`` status (which
        would notify the owner), only an audit entry saying why the start was refused."""
        queue: str | None = None
        with self.ctx.db.session() as s:
            self.lease.fence(s)
            job = lock_job(s, job_id)
            if job is not None and job.status == JobStatus.RUNNING:
                restore_ready(s, job, self._started_at_before.get(job_id), exc.reason,
                              self.device_id)
                queue = self.own if job.pinned_device_id else self.pool
        self._started_at_before.pop(job_id, None)
        if queue is not None:
            from fabqueue.queue.pipeline import push_ready

            push_ready(self.ctx, job_id, queue, at_front=True)
        self.job_id = None
        state = DeviceState.ERROR if exc.code in ("not_laser_mode", "alarm") else \
            DeviceState.IDLE
        self._set_device(state=state.value, state_reason=exc.reason, current_job_id=None,
                         progress=None)
