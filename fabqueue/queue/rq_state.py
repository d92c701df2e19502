"""Is a piece of work still carried by Redis? Queued, or started by a worker that lives.

Asked by the reconciler (what to queue again after a crash or a Redis restart) and by the
pipeline (is a job's slicing still on its way); apart from both so neither imports the other.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime

from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from rq.worker import Worker

from fabqueue.queue.context import Context
from fabqueue.queue.rq_worker import HEARTBEAT_S

#: a running job's worker beats every HEARTBEAT_S; this much silence means it is gone
HEARTBEAT_GRACE_S = HEARTBEAT_S * 3 + 2


def _pid_gone(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def worker_alive(ctx: Context, name: str | None) -> bool:
    if not name:
        return False
    worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + name,
                                connection=ctx.redis)
    if worker is None or worker.last_heartbeat is None:
        return False
    # a worker on this computer whose process is gone is dead now, not in a few beats
    if worker.hostname == socket.gethostname() and _pid_gone(worker.pid):
        return False
    age = (datetime.now(UTC) - worker.last_heartbeat.replace(tzinfo=UTC)).total_seconds()
    return age < HEARTBEAT_GRACE_S


def rq_state(ctx: Context, rq_id: str) -> str:
    """``alive`` (queued, or started by a live worker), ``dead`` (its worker stopped or it
    ended without moving the job on) or ``lost`` (Redis no longer has it)."""
    try:
        rq_job = RQJob.fetch(rq_id, connection=ctx.redis)
    except NoSuchJobError:
        return "lost"
    status = rq_job.get_status(refresh=True)
    if status == "queued":
        # A worker killed between taking the entry off its queue and marking it started
        # leaves it "queued" on no queue at all (RQ cleans that up only much later).
        on_queue = rq_id.encode() in ctx.redis.lrange(f"rq:queue:{rq_job.origin}", 0, -1)
        return "alive" if on_queue else "lost"
    if status in ("deferred", "scheduled"):
        return "alive"
    if status == "started" and worker_alive(ctx, rq_job.worker_name):
        return "alive"
    return "dead"


def rq_job_alive(ctx: Context, rq_id: str) -> bool:
    """Whether Redis still carries this work: queued, or started by a worker that lives."""
    return rq_state(ctx, rq_id) == "alive"
