"""Reconciliation: the database is the truth, Redis carries work and may be lost.

Run periodically by ``fabqueue serve`` (and at every start). It finds jobs whose queue entry
vanished (Redis restarted) or whose worker died (SIGKILL), and queues them again or ends them
with a reason, so no job stays ``analyzing`` or waiting forever.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from rq.worker import Worker
from sqlalchemy import select

from fabqueue.core.jobs import JobStatus
from fabqueue.queue import names
from fabqueue.queue.context import Context
from fabqueue.queue.pipeline import reconcile_pipeline
from fabqueue.queue.tasks import enqueue_analysis, mark_analysis_failed
from fabqueue.store.models import Job

log = logging.getLogger(__name__)

HEARTBEAT_GRACE_S = 50  # RQ's worker beats every ~30 s while its work-horse runs


def rq_job_alive(ctx: Context, rq_id: str) -> bool:
    """Whether Redis still carries this work: queued, or started by a worker that lives."""
    try:
        rq_job = RQJob.fetch(rq_id, connection=ctx.redis)
    except NoSuchJobError:
        return False
    status = rq_job.get_status(refresh=True)
    if status in ("queued", "deferred", "scheduled"):
        return True
    if status != "started":
        return False
    name = rq_job.worker_name
    if not name:
        return False
    worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + name,
                                connection=ctx.redis)
    if worker is None or worker.last_heartbeat is None:
        return False
    age = (datetime.now(UTC) - worker.last_heartbeat.replace(tzinfo=UTC)).total_seconds()
    return age < HEARTBEAT_GRACE_S


def _forget(ctx: Context, rq_id: str) -> None:
    with contextlib.suppress(NoSuchJobError):
        RQJob.fetch(rq_id, connection=ctx.redis).delete()


def reconcile_analysis(ctx: Context) -> dict[str, int]:
    counts = {"requeued": 0, "failed": 0}
    cutoff = datetime.now(UTC) - timedelta(seconds=ctx.settings.stale_after_s)
    with ctx.db.session() as s:
        stale = list(s.execute(select(Job.id, Job.analysis_attempts, Job.updated_at).where(
            Job.status == JobStatus.ANALYZING)))
    for job_id, attempts, updated in stale:
        if updated is not None and updated.replace(tzinfo=UTC) > cutoff:
            continue
        rq_id = names.analysis_job_id(job_id)
        if rq_job_alive(ctx, rq_id):
            continue
        if attempts >= ctx.settings.analysis_attempts:
            log.warning("job %s: analysis died %s times; marking invalid", job_id, attempts)
            mark_analysis_failed(ctx, job_id)
            counts["failed"] += 1
            continue
        _forget(ctx, rq_id)
        with ctx.db.session() as s:
            job = s.get(Job, job_id)
            if job is not None:
                job.updated_at = datetime.now(UTC)
        enqueue_analysis(ctx, job_id)
        counts["requeued"] += 1
    return counts


def reconcile_once(ctx: Context) -> dict[str, Any]:
    return {"analysis": reconcile_analysis(ctx), "pipeline": reconcile_pipeline(ctx)}
