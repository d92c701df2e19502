"""Where a job stands in its site's queue and when it should be ready (for the pages).

It orders the waiting jobs the way the dispatcher does (``core.scheduling.order``: priority,
fair share, age) and spreads them over the site's machines by ``expected_times``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, defer, selectinload

from fabqueue.core.jobs import JobStatus
from fabqueue.core.scheduling import Candidate, expected_times, order
from fabqueue.store.models import Device, Job

WAITING = (JobStatus.APPROVED.value, JobStatus.SLICING.value, JobStatus.READY.value)
QUEUE_SHOWN = 50  # rows on a page of the staff queue
QUEUE_ORDERED = 500  # waiting jobs ordered per site at most
KIND_DEVICE = {"print": "printer", "laser": "laser"}


@dataclass(frozen=True)
class QueueEntry:
    job: Job
    position: int  # 1 = next
    start_at: float  # epoch seconds
    ready_at: float


def _ordered(db: Session, site_id: str | None, kind: str,
             limit: int = QUEUE_ORDERED) -> tuple[list[Candidate], dict[int, tuple[float, float]]]:
    """The waiting jobs in dispatch order with expected (start, finish) times.

    Cheap per request: the order needs only a few figures per job, which the database picks
    out of the analysis JSON (decoding hundreds of analyses in Python was most of a page's
    time); callers load whole jobs only for the rows they show."""
    q = select(Job.id, Job.owner_id, Job.batch_id, Job.material_id, Job.priority,
               Job.pinned_device_id, Job.analysis["estimated_seconds"])
    q = q.where(Job.status.in_(WAITING), Job.kind == kind)
    q = q.where(Job.site_id == site_id) if site_id else q.where(Job.site_id.is_(None))
    candidates = [
        Candidate(job_id=i, owner_id=owner, batch_id=batch, material=material,
                  priority=priority, fits=(), pinned_device=pinned,
                  estimated_seconds=seconds if isinstance(seconds, int | float) else None)
        for i, owner, batch, material, priority, pinned, seconds
        in db.execute(q.order_by(Job.id).limit(limit))]
    if not candidates:
        return [], {}
    now = time.time()
    devices = db.scalars(select(Device).where(Device.kind == KIND_DEVICE.get(kind, kind),
                                              Device.enabled.is_(True),
                                              Device.site_id == site_id))
    free_at = [now + (d.time_left_s or 0) for d in devices if d.state != "offline"]
    ordered = order(candidates, {})
    return ordered, expected_times(ordered, free_at or [now], now)


def queue_page(db: Session, site_id: str | None, kind: str, page: int = 1,
               per_page: int = QUEUE_SHOWN) -> tuple[list[QueueEntry], int]:
    """One page of the site's queue (positions count from the whole queue's start), and how
    many jobs wait."""
    ordered, times = _ordered(db, site_id, kind)
    first = (page - 1) * per_page
    shown = ordered[first:first + per_page]
    jobs = {j.id: j for j in db.scalars(
        select(Job).where(Job.id.in_([c.job_id for c in shown]))
        .options(defer(Job.slice_result), selectinload(Job.owner)))}
    entries = [QueueEntry(jobs[c.job_id], first + i + 1, *times[c.job_id])
               for i, c in enumerate(shown)]
    return entries, len(ordered)


def site_queue(db: Session, site_id: str | None, kind: str,
               limit: int = QUEUE_ORDERED) -> list[QueueEntry]:
    """The waiting jobs of one site and kind, in the order they should run."""
    return queue_page(db, site_id, kind, 1, limit)[0]


def position_of(db: Session, job: Job) -> QueueEntry | None:
    if job.status not in WAITING:
        return None
    ordered, times = _ordered(db, job.site_id, job.kind)
    for i, c in enumerate(ordered):
        if c.job_id == job.id:
            return QueueEntry(job, i + 1, *times[job.id])
    return None
