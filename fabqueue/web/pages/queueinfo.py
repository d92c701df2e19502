"""Where a job stands in its site's queue and when it should be ready (for the pages).

It orders the waiting jobs the way the dispatcher does (``core.scheduling.order``: priority,
fair share, age) and spreads them over the site's machines by ``expected_times``.
"""

from __future__ import annotations

import heapq
import time
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from fabqueue.core.jobs import JobStatus
from fabqueue.core.scheduling import Candidate, expected_times
from fabqueue.store.models import Device, Job

WAITING = (JobStatus.APPROVED.value, JobStatus.SLICING.value, JobStatus.READY.value)
KIND_DEVICE = {"print": "printer", "laser": "laser"}


@dataclass(frozen=True)
class QueueEntry:
    job: Job
    position: int  # 1 = next
    start_at: float  # epoch seconds
    ready_at: float


def _candidate(job: Job) -> Candidate:
    a = job.analysis or {}
    return Candidate(job_id=job.id, owner_id=job.owner_id, batch_id=job.batch_id,
                     material=job.material_id, priority=job.priority,
                     fits=tuple(a.get("fits") or ()), pinned_device=job.pinned_device_id,
                     estimated_seconds=a.get("estimated_seconds"))


def fast_order(candidates: Sequence[Candidate], recent_starts: Mapping[str, int]
               ) -> list[Candidate]:
    """The same order as ``core.scheduling.order`` (priority, then fair share, then age) in
    O(n log n) instead of O(n²): a staff page orders hundreds of jobs per request."""
    started = defaultdict(int, recent_starts)
    out: list[Candidate] = []
    by_priority: dict[int, dict[str, deque[Candidate]]] = defaultdict(lambda: defaultdict(deque))
    for c in sorted(candidates, key=lambda c: c.job_id):
        by_priority[c.priority][c.share_key].append(c)
    for priority in sorted(by_priority, reverse=True):
        heap = [(started[k], q[0].job_id, k) for k, q in by_priority[priority].items()]
        heapq.heapify(heap)
        queues = by_priority[priority]
        while heap:
            _, _, key = heapq.heappop(heap)
            pick = queues[key].popleft()
            out.append(pick)
            started[key] += 1
            if queues[key]:
                heapq.heappush(heap, (started[key], queues[key][0].job_id, key))
    return out


def site_queue(db: Session, site_id: str | None, kind: str, limit: int = 500) -> list[QueueEntry]:
    """The waiting jobs of one site and kind, in the order they should run."""
    q = select(Job).where(Job.status.in_(WAITING), Job.kind == kind)
    q = q.where(Job.site_id == site_id) if site_id else q.where(Job.site_id.is_(None))
    # owners are shown beside every job: load them in one query, not one per row
    jobs = {j.id: j for j in db.scalars(q.options(selectinload(Job.owner))
                                        .order_by(Job.id).limit(limit))}
    if not jobs:
        return []
    now = time.time()
    devices = db.scalars(select(Device).where(Device.kind == KIND_DEVICE.get(kind, kind),
                                              Device.enabled.is_(True),
                                              Device.site_id == site_id))
    free_at = [now + (d.time_left_s or 0) for d in devices if d.state != "offline"]
    ordered = fast_order([_candidate(j) for j in jobs.values()], {})
    times = expected_times(ordered, free_at or [now], now)
    return [QueueEntry(jobs[c.job_id], i + 1, *times[c.job_id]) for i, c in enumerate(ordered)]


def position_of(db: Session, job: Job) -> QueueEntry | None:
    if job.status not in WAITING:
        return None
    return next((e for e in site_queue(db, job.site_id, job.kind) if e.job.id == job.id), None)
