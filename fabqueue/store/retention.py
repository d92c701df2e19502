"""The retention purge: applies ``core.retention`` to the database and the file store.

Idempotent (it decides from the database what is due *now*), so ``serve`` runs it daily and
``fabqueue purge`` by hand; each run that is not a dry run is recorded with its counts only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fabqueue.config import Settings
from fabqueue.core.access import Role
from fabqueue.core.jobs import FINAL
from fabqueue.core.retention import AccountStep, Kind, Policy, account_step, files_due, names_due
from fabqueue.store.erasure import ERASED, erase_user, job_shas
from fabqueue.store.files import FileStore
from fabqueue.store.models import Batch, Job, JobEvent, Notification, User
from fabqueue.store.models_privacy import AccountNotice, PurgeRun

#: The notification an account gets 30 days before it is erased for inactivity.
ACCOUNT_EXPIRES = "account_expires"


def policy(settings: Settings) -> Policy:
    return Policy(files_days=settings.retain_files_days,
                  pupil_names_days=settings.retain_pupil_names_days,
                  inactive_days=settings.retain_inactive_accounts_days)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:  # SQLite forgets the zone: it was UTC
        return value.replace(tzinfo=UTC)
    return value


def _picked_up(db: Session) -> dict[int, datetime]:
    """When each job was handed over (the pickup helper's table, once it is there)."""
    from fabqueue.store import models_pickup

    pickup = getattr(models_pickup, "Pickup", None)
    if pickup is None or not hasattr(pickup, "collected_at"):
        return {}
    rows = db.execute(select(pickup.job_id, pickup.collected_at)
                      .where(pickup.collected_at.is_not(None))).all()
    return {job_id: _aware(at) for job_id, at in rows if at is not None}


def _files_due(db: Session, now: datetime, pol: Policy) -> list[Job]:
    erased = set(db.scalars(select(JobEvent.job_id).where(JobEvent.action == ERASED)))
    picked = _picked_up(db)
    due = []
    for job in db.scalars(select(Job).where(Job.files_purged_at.is_(None),
                                            Job.status.in_([s.value for s in FINAL]))):
        ended = _aware(job.finished_at) or _aware(job.updated_at)
        if files_due(ended, picked.get(job.id), now, pol, owner_erased=job.id in erased):
            due.append(job)
    return due


def _names_due(db: Session, now: datetime, pol: Policy, tz: ZoneInfo) -> list[Batch]:
    today = now.astimezone(tz).date()
    return [b for b in db.scalars(select(Batch).where(Batch.names_purged_at.is_(None)))
            if names_due(b.ends_on, today, pol)]


def _accounts(db: Session, now: datetime, pol: Policy) -> list[tuple[User, AccountStep]]:
    """Accounts whose inactivity calls for a step. Administrators are never erased for it:
    a lab must not lose the last person who can run it."""
    last_job = dict(db.execute(select(Job.owner_id, func.max(Job.created_at))
                               .group_by(Job.owner_id)).all())
    notices = dict(db.execute(select(AccountNotice.user_id, AccountNotice.told_at)).all())
    out = []
    for user in db.scalars(select(User).where(User.erased_at.is_(None),
                                              User.role != Role.ADMIN.value)):
        moments = [_aware(user.created_at), _aware(user.last_seen_at),
                   _aware(last_job.get(user.id))]
        last_active = max(m for m in moments if m is not None)
        step = account_step(last_active, _aware(notices.get(user.id)), now, pol)
        if step != AccountStep.KEEP:
            out.append((user, step))
    return out


def _forget_names(db: Session, batch: Batch, now: datetime) -> int:
    """A class's names are replaced by its pseudonyms for good (file names too: they are
    often the pupil's name). Returns how many pupils had a name."""
    named = set()
    ids = []
    for job in batch.jobs:
        if job.student_name:
            named.add(job.pupil or job.id)
        job.student_name = None
        if job.pupil:
            job.file_name = f"{job.pupil}.{job.file_format}"
        ids.append(job.id)
    if ids:
        for ev in db.scalars(select(JobEvent).where(JobEvent.job_id.in_(ids),
                                                    JobEvent.data.is_not(None))):
            if isinstance(ev.data, dict) and "file" in ev.data:
                ev.data = {k: v for k, v in ev.data.items() if k != "file"} or None
    batch.names_purged_at = now
    return len(named)


def purge(db: Session, files: FileStore, settings: Settings, now: datetime, *,
          dry_run: bool = False) -> dict[str, int]:
    """One run: counts per kind (``core.retention.Kind``); nothing changes on a dry run."""
    pol = policy(settings)
    tz = ZoneInfo(settings.timezone)
    counts = {k.value: 0 for k in Kind}
    jobs = _files_due(db, now, pol)
    batches = _names_due(db, now, pol, tz)
    accounts = _accounts(db, now, pol)
    counts[Kind.JOB_FILES] = len(jobs)
    counts[Kind.ACCOUNTS_TOLD] = sum(step == AccountStep.TELL for _, step in accounts)
    counts[Kind.ACCOUNTS_ERASED] = sum(step == AccountStep.ERASE for _, step in accounts)
    shas: set[str] = set().union(*(job_shas(j) for j in jobs)) if jobs else set()
    if dry_run:
        kept = {s for row in db.execute(select(Job.file_sha256, Job.thumbnail_sha256,
                                               Job.program_sha256)
                                        .where(Job.files_purged_at.is_(None),
                                               Job.id.not_in([j.id for j in jobs]))).all()
                for s in row if s}
        counts[Kind.FILES] = sum(files.exists(s) for s in shas - kept)
        counts[Kind.PUPIL_NAMES] = sum(
            len({j.pupil or j.id for j in b.jobs if j.student_name}) for b in batches)
        db.rollback()
        return counts
    for batch in batches:
        counts[Kind.PUPIL_NAMES] += _forget_names(db, batch, now)
    for user, step in accounts:
        if step == AccountStep.TELL:
            db.merge(AccountNotice(user_id=user.id, told_at=now))
            db.add(Notification(user_id=user.id, kind=ACCOUNT_EXPIRES, text=ACCOUNT_EXPIRES,
                                params={"days": pol.notice_days}, at=now))
        else:
            erase_user(db, files, user, actor_id=None, now=now)
    db.flush()
    # the files last, after the database knows: a crash in between leaves a file too many
    # (found again next run), never a job whose file is gone without its mark
    from fabqueue.store.erasure import delete_unused

    for job in jobs:
        job.files_purged_at = now
    db.flush()
    db.add(PurgeRun(at=now, dry_run=False, counts=dict(counts)))
    db.commit()
    counts[Kind.FILES] = delete_unused(db, files, shas)
    run = db.scalars(select(PurgeRun).order_by(PurgeRun.id.desc())).first()
    if run is not None:
        run.counts = dict(counts)
        db.commit()
    return counts


def run_periodic(ctx: Any, now: datetime) -> dict[str, int]:
    """``serve``'s daily purge (registered in ``queue.periodic``)."""
    with ctx.db.session() as db:
        return purge(db, ctx.files, ctx.settings, now)
