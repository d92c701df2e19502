"""Where a job stands in its site's queue and when it should be ready (for the pages).

It orders the waiting jobs the way the dispatcher does (``core.scheduling.order``: priority,
fair share, age) and spreads them over the site's machines by ``expected_times``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, defer, selectinload

from fabqueue.core.jobs import JobStatus
from fabqueue.core.scheduling import Candidate
from fabqueue.store.forecast import queue_order
from fabqueue.store.models import Job

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


def _ordered(db: Session, site_id: str | None, kind: str, limit: int = QUEUE_ORDERED
             ) -> tuple[list[Candidate], dict[int, tuple[float, float]]]:
    """The waiting jobs in dispatch order with expected times: the API's forecast, so a page
    and ``GET /api/jobs/{id}`` never disagree."""
    return queue_order(db, site_id, KIND_DEVICE.get(kind, kind), limit=limit)


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
