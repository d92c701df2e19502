"""Reconciliation: the database is the truth, Redis carries work and may be lost.

Run every few seconds by ``fabqueue serve`` (at every start, and at once after its Redis was
restarted). It finds jobs whose queue entry vanished (Redis restarted) or whose worker died
(SIGKILL), and queues them again or ends them with a reason (:mod:`fabqueue.queue.retry`),
so no job stays ``analyzing`` or ``slicing`` for long.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from sqlalchemy import select

from fabqueue.core.jobs import JobStatus
from fabqueue.core.reasons import N_, reason
from fabqueue.queue import names
from fabqueue.queue.context import Context
from fabqueue.queue.pipeline import enqueue_preparation, reconcile_pipeline
from fabqueue.queue.retry import Outcome, Stage, retry_or_give_up
from fabqueue.queue.rq_state import rq_state
from fabqueue.queue.tasks import enqueue_analysis
from fabqueue.store.jobs import change_status, lock_job, record
from fabqueue.store.models import Job

log = logging.getLogger(__name__)

def _forget(ctx: Context, rq_id: str) -> None:
    with contextlib.suppress(NoSuchJobError):
        RQJob.fetch(rq_id, connection=ctx.redis).delete()


def _in_flight(ctx: Context, status: JobStatus) -> list[tuple[int, datetime | None]]:
    with ctx.db.session() as s:
        return [(i, u) for i, u in s.execute(
            select(Job.id, Job.updated_at).where(Job.status == status))]


def _requeue_lost(ctx: Context, job_id: int, stage: Stage, status: JobStatus) -> bool:
    """The entry vanished with Redis: not the job's fault, so no attempt is counted."""
    why = reason("queue_lost", N_("The work queue was lost (Redis restarted); queued again."))
    with ctx.db.session() as s:
        job = lock_job(s, job_id)
        if job is None or job.status != status:
            return False
        data = {"stage": stage.value}
        if status == JobStatus.SLICING:  # prepare_job starts from approved
            change_status(s, job, JobStatus.APPROVED, action="requeued", reason=why, data=data)
        else:
            record(s, job, "requeued", reason=why, data=data)
        job.updated_at = datetime.now(UTC)
    return True


def _reconcile_stage(ctx: Context, stage: Stage, settle_s: float) -> dict[str, int]:
    counts = {"requeued": 0, "retried": 0, "failed": 0}
    status = JobStatus.ANALYZING if stage == Stage.ANALYSIS else JobStatus.SLICING
    rq_id_of = names.analysis_job_id if stage == Stage.ANALYSIS else names.slicing_job_id
    enqueue = enqueue_analysis if stage == Stage.ANALYSIS else enqueue_preparation
    cutoff = datetime.now(UTC) - timedelta(seconds=settle_s)
    for job_id, updated in _in_flight(ctx, status):
        rq_id = rq_id_of(job_id)
        state = rq_state(ctx, rq_id)
        if state == "alive":
            continue
        if state == "lost":
            # the web queues just after its commit: give it a moment before calling it lost
            if updated is not None and updated.replace(tzinfo=UTC) > cutoff:
                continue
            if _requeue_lost(ctx, job_id, stage, status):
                enqueue(ctx, job_id)
            counts["requeued"] += 1
            continue
        outcome = retry_or_give_up(ctx, job_id, stage)
        if outcome == Outcome.RETRIED:
            _forget(ctx, rq_id)
            enqueue(ctx, job_id)
            counts["retried"] += 1
        elif outcome == Outcome.GAVE_UP:
            _forget(ctx, rq_id)
            counts["failed"] += 1
    return counts


def reconcile_analysis(ctx: Context, settle_s: float | None = None) -> dict[str, int]:
    return _reconcile_stage(ctx, Stage.ANALYSIS, _settle(ctx, settle_s))


def reconcile_slicing(ctx: Context, settle_s: float | None = None) -> dict[str, int]:
    return _reconcile_stage(ctx, Stage.SLICING, _settle(ctx, settle_s))


def _settle(ctx: Context, settle_s: float | None) -> float:
    return ctx.settings.stale_after_s if settle_s is None else settle_s


def reconcile_once(ctx: Context, settle_s: float | None = None) -> dict[str, Any]:
    """One pass. ``settle_s=0`` after a Redis restart: every lost entry is queued now."""
    return {"analysis": reconcile_analysis(ctx, settle_s),
            "slicing": reconcile_slicing(ctx, settle_s),
            "pipeline": reconcile_pipeline(ctx, settle_s=_settle(ctx, settle_s))}
