"""Job changes: the one path every status change takes (state machine → audit → event)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, event, select, update
from sqlalchemy.orm import Session

from fabqueue import events
from fabqueue.core.jobs import FINAL, JobStatus, check_transition
from fabqueue.store.models import Job, JobEvent, Notification, utcnow

#: Statuses whose arrival tells the owner something (web notification, e-mail).
NOTIFY_ON = {
    JobStatus.DONE: "job_done",
    JobStatus.REJECTED: "job_rejected",
    JobStatus.INVALID: "job_invalid",
    JobStatus.FAILED: "job_failed",
    JobStatus.INTERRUPTED: "job_interrupted",
    JobStatus.AWAITING_APPROVAL: None,
}


class StatusConflict(Exception):
    """The job's status changed under us (a racing worker or staff member won): this change
    is not made. The web answers 409; a worker drops its attempt."""

    def __init__(self, job_id: int, expected: str) -> None:
        super().__init__(f"job {job_id} is no longer {expected}")
        self.job_id = job_id
        self.expected = expected


def _pending(session: Session) -> list[tuple[str, dict[str, Any]]]:
    return session.info.setdefault("fabqueue_events", [])


def queue_event(session: Session, topic: str, data: dict[str, Any]) -> None:
    """Publish ``topic`` once the session commits (never for a rolled-back change)."""
    _pending(session).append((topic, data))


@event.listens_for(Session, "after_commit")
def _publish_after_commit(session: Session) -> None:
    for topic, data in session.info.pop("fabqueue_events", []):
        events.publish(topic, data)


@event.listens_for(Session, "after_rollback")
def _drop_after_rollback(session: Session) -> None:
    session.info.pop("fabqueue_events", None)


def record(
    session: Session,
    job: Job,
    action: str,
    *,
    actor_id: int | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> JobEvent:
    """Write an audit entry for something done to a job that is not a status change."""
    ev = JobEvent(job_id=job.id, actor_id=actor_id, action=action, reason=reason, data=data,
                  from_status=job.status, to_status=job.status)
    session.add(ev)
    return ev


def change_status(
    session: Session,
    job: Job,
    target: JobStatus | str,
    *,
    actor_id: int | None = None,
    reason: str | None = None,
    action: str | None = None,
    data: dict[str, Any] | None = None,
    now: datetime | None = None,
    where: Sequence[ColumnElement[bool]] = (),
) -> JobEvent:
    """Move ``job`` to ``target`` through the state machine, with audit and event.

    The move is one conditional UPDATE (``WHERE status = <the status we saw>`` plus
    ``where``): of two sessions changing the same job at once exactly one wins, the other
    gets :class:`StatusConflict` and writes nothing (no audit event, no notification).
    """
    previous = JobStatus(job.status)
    new = check_transition(previous, target)
    session.flush()  # a new job gets its id; pending edits of this one go first
    res = session.execute(update(Job).where(Job.id == job.id, Job.status == previous.value,
                                            *where)
                          .values(status=new.value).execution_options(synchronize_session=False))
    if res.rowcount != 1:  # type: ignore[attr-defined]
        raise StatusConflict(job.id, previous.value)
    now = now or utcnow()
    job.status = new.value
    job.status_reason = reason
    job.updated_at = now
    if new == JobStatus.RUNNING and job.started_at is None:
        job.started_at = now
    if new in FINAL or new == JobStatus.INTERRUPTED:
        job.finished_at = now
    ev = JobEvent(job_id=job.id, actor_id=actor_id, action=action or new.value,
                  from_status=previous.value, to_status=new.value, reason=reason, data=data)
    session.add(ev)
    kind = NOTIFY_ON.get(new)
    if kind:
        session.add(Notification(user_id=job.owner_id, job_id=job.id, kind=kind,
                                 text=kind, params={"reason": reason or ""}))
    queue_event(session, events.JOB_STATUS, {
        "job": job.id, "from": previous.value, "to": new.value, "reason": reason,
        "owner": job.owner_id, "site": job.site_id, "batch": job.batch_id,
        "teacher": job.batch.teacher_id if job.batch_id and job.batch else None,
    })
    return ev


def lock_job(session: Session, job_id: int) -> Job | None:
    """Load a job for update (row lock on PostgreSQL; SQLite serialises writers anyway)."""
    return session.scalars(select(Job).where(Job.id == job_id).with_for_update()).first()


def claim_ready(session: Session, job_id: int, device_id: str) -> Job | None:
    """Claim a ready job for ``device_id`` (``running`` on it) or None if another machine
    won: one conditional UPDATE (``status = 'ready' AND device_id IS NULL``), so of N
    workers claiming one job at once exactly one gets it, on SQLite and PostgreSQL alike
    (there the losers wait on the row's lock, then find it no longer ready)."""
    job = session.get(Job, job_id, populate_existing=True)
    if job is None or job.status != JobStatus.READY or not job.program_sha256 or job.device_id:
        return None
    try:
        change_status(session, job, JobStatus.RUNNING, data={"device": device_id},
                      where=(Job.device_id.is_(None),))
    except StatusConflict:
        return None
    job.device_id = device_id
    return job
