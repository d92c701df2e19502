"""Erasure (issue 21): an account, or one pupil of a class, loses everything personal; the
jobs stay only as anonymous statistics (site, material, grams, hours, month).

What goes: names, e-mail, password hash, notification channels and messages, file names,
notes, the files themselves. What stays: ids and roles (the audit history names nobody) and
the non-personal job columns the statistics read. A job running at that moment finishes
first: its files go at the next purge after it ends (``store.retention``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from fabqueue.core.jobs import FINAL, TRANSITIONS, JobStatus
from fabqueue.core.reasons import decode
from fabqueue.store.files import FileStore
from fabqueue.store.jobs import change_status, record
from fabqueue.store.models import Batch, Job, JobEvent, Notification, User
from fabqueue.store.models_privacy import AccountNotice
from fabqueue.store.users import revoke_sign_ins

#: The audit action that marks a job whose person was erased (its files go once it ends).
ERASED = "erased"
#: What an erased account's name becomes (names are unique: the id keeps it so).
DELETED_NAME = "deleted-user-{id}"


def deleted_name(user_id: int) -> str:
    return DELETED_NAME.format(id=user_id)


def _scrub_events(db: Session, job_ids: list[int]) -> None:
    """Audit entries keep who (an id), what and when; data (a file name) goes, and a reason
    only stays when it is one of FabQueue's codes, not words someone typed."""
    if not job_ids:
        return
    for ev in db.scalars(select(JobEvent).where(JobEvent.job_id.in_(job_ids))):
        ev.data = None
        if ev.reason and decode(ev.reason) is None:
            ev.reason = None


def _forget_job(db: Session, job: Job, actor_id: int | None, now: datetime) -> None:
    """The job keeps its statistics; its words, names and (once it ended) files go."""
    if job.status not in FINAL and job.status != JobStatus.RUNNING and \
            JobStatus.CANCELLED in TRANSITIONS.get(JobStatus(job.status), ()):
        change_status(db, job, JobStatus.CANCELLED, actor_id=actor_id, now=now)
    job.file_name = f"{job.pupil or 'deleted'}.{job.file_format}"
    job.note = None
    job.student_name = None
    job.status_reason = job.status_reason if decode(job.status_reason) else None
    record(db, job, ERASED, actor_id=actor_id)
    db.query(Notification).filter(Notification.job_id == job.id).update(
        {Notification.params: None}, synchronize_session=False)


def _personal_tables(db: Session, user_id: int) -> None:
    """The pickup helper's tables, when they are there: channels and queued messages."""
    from fabqueue.store import models_pickup

    prefs = getattr(models_pickup, "NotificationPrefs", None)
    if prefs is not None:
        db.execute(delete(prefs).where(prefs.user_id == user_id))
    deliveries = getattr(models_pickup, "Delivery", None)
    if deliveries is not None:
        db.execute(delete(deliveries).where(deliveries.user_id == user_id))


def erase_user(db: Session, files: FileStore, user: User, *, actor_id: int | None,
               now: datetime) -> dict[str, int]:
    """Erase an account at once (sessions and tokens end with it). Returns counts."""
    revoke_sign_ins(user)
    user.name = deleted_name(user.id)
    user.email = None
    user.password_hash = "!erased"  # no password ever matches it
    user.locale = None
    user.disabled = True
    user.last_seen_at = None
    user.erased_at = now
    db.execute(delete(Notification).where(Notification.user_id == user.id))
    db.execute(delete(AccountNotice).where(AccountNotice.user_id == user.id))
    _personal_tables(db, user.id)
    jobs = list(db.scalars(select(Job).where(Job.owner_id == user.id)))
    # the pupils of the classes they handed in are theirs to answer for: names go too
    batch_ids = list(db.scalars(select(Batch.id).where(Batch.teacher_id == user.id)))
    if batch_ids:
        jobs += [j for j in db.scalars(select(Job).where(Job.batch_id.in_(batch_ids)))
                 if j.owner_id != user.id]
    for job in jobs:
        _forget_job(db, job, actor_id, now)
    _scrub_events(db, [j.id for j in jobs])
    removed = remove_ended_files(db, files, jobs, now)
    return {"jobs": len(jobs), "files": removed}


def erase_pupil(db: Session, files: FileStore, batch: Batch, pupil: str, *,
                actor_id: int | None, now: datetime) -> dict[str, int]:
    """One pupil of a class: their jobs lose the name, file names and files."""
    jobs = list(db.scalars(select(Job).where(Job.batch_id == batch.id, Job.pupil == pupil)))
    for job in jobs:
        _forget_job(db, job, actor_id, now)
    _scrub_events(db, [j.id for j in jobs])
    return {"jobs": len(jobs), "files": remove_ended_files(db, files, jobs, now)}


def job_shas(job: Job) -> set[str]:
    return {s for s in (job.file_sha256, job.thumbnail_sha256, job.program_sha256) if s}


def remove_ended_files(db: Session, files: FileStore, jobs: Iterable[Job],
                       now: datetime) -> int:
    """Mark the ended ones of ``jobs`` as without files and delete every file of theirs
    that no job keeping its files still uses (the store is content-addressed: one upload
    may back two jobs). A running job keeps its files until it ends. Returns files removed."""
    ended = [j for j in jobs if j.status in FINAL and j.files_purged_at is None]
    for job in ended:
        job.files_purged_at = now
    db.flush()
    candidates: set[str] = set().union(*(job_shas(j) for j in ended)) if ended else set()
    return delete_unused(db, files, candidates)


def delete_unused(db: Session, files: FileStore, shas: set[str]) -> int:
    if not shas:
        return 0
    kept = db.execute(select(Job.file_sha256, Job.thumbnail_sha256, Job.program_sha256)
                      .where(Job.files_purged_at.is_(None))).all()
    in_use = {s for row in kept for s in row if s}
    removed = 0
    for sha in sorted(shas - in_use):
        path = files.path(sha)
        if path.exists():
            path.unlink()
            removed += 1
    return removed
