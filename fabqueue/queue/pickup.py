"""Pickup: a finished part goes from the machine to a shelf place to its owner's hands.

Staff clear a printer's bed (or shelve a laser part): the job gets a pickup, ``waiting``;
staff choose its place (the next free one suggested) and the owner is told; reminders follow
after ``FABQUEUE_PICKUP_REMIND_DAYS``; after ``FABQUEUE_PICKUP_KEEP_DAYS`` the part is
``uncollected`` and on the staff disposal list. Every move is one conditional UPDATE, so a
doubled request or periodic run changes (and tells) nothing twice.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fabqueue.config import Settings
from fabqueue.core.findings import N_
from fabqueue.core.jobs import JobStatus
from fabqueue.core.pickup import (
    ON_SHELF,
    PickupState,
    next_free_place,
    parse_days,
    reminder_due,
    uncollected_due,
)
from fabqueue.notify import publish
from fabqueue.store.jobs import record
from fabqueue.store.models import Batch, Job, Site
from fabqueue.store.models_pickup import Pickup

P = PickupState


class PickupRefused(Exception):
    """A pickup move that does not fit the part's state (the web answers 409 with the
    message, an msgid, in the reader's language)."""

    def __init__(self, message: str, **params: Any) -> None:
        super().__init__(message.format(**params))
        self.message = message
        self.params = params


def aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def new_token() -> str:
    return secrets.token_urlsafe(24)  # 192 random bits: a label's URL can't be guessed


def recipient(db: Session, job: Job) -> int:
    """Who is told: a class's teacher for a pupil's part, else its owner."""
    if job.batch_id:
        batch = db.get(Batch, job.batch_id)
        if batch is not None:
            return batch.teacher_id
    return job.owner_id


def site_places(db: Session, site_id: str | None) -> list[str]:
    site = db.get(Site, site_id) if site_id else None
    return list(site.places or []) if site else []


def suggest(db: Session, site_id: str | None) -> str | None:
    taken = db.scalars(select(Pickup.place).where(
        Pickup.site_id == site_id, Pickup.state.in_([s.value for s in ON_SHELF])))
    return next_free_place(site_places(db, site_id), taken)


def _tell_ready(db: Session, job: Job, pickup: Pickup, now: datetime) -> None:
    place = pickup.place or (db.get(Site, job.site_id).name if job.site_id else "")
    publish(db, "ready_for_pickup", site=job.site_id, user_ids=[recipient(db, job)],
            params={"job": job.id, "place": place, "since": aware(pickup.since).isoformat()},
            dedupe=f"ready_for_pickup:{job.id}:{place}", now=now)


def start(db: Session, job: Job, *, now: datetime | None = None,
          actor_id: int | None = None) -> Pickup | None:
    """The part is off the machine: the job's pickup is ``waiting`` (once; a second call
    returns the same row). Only a ``done`` job has a part to hand over."""
    if job.status != JobStatus.DONE:
        return None
    existing = db.get(Pickup, job.id)
    if existing is not None:
        return existing
    now = now or datetime.now(UTC)
    pickup = Pickup(job_id=job.id, site_id=job.site_id, state=P.WAITING.value, since=now,
                    token=new_token())
    db.add(pickup)
    record(db, job, "pickup_waiting", actor_id=actor_id)
    if not site_places(db, job.site_id):  # nowhere to choose: ready at the lab at once
        db.flush()
        _tell_ready(db, job, pickup, now)
    return pickup


def part_off_the_bed(db: Session, job_id: int | None, actor_id: int | None = None) -> None:
    """Called where staff clear a printer's bed: its finished job waits for pickup."""
    job = db.get(Job, job_id) if job_id else None
    if job is not None:
        start(db, job, actor_id=actor_id)


def set_place(db: Session, job: Job, place: str, *, actor_id: int,
              now: datetime | None = None) -> Pickup:
    """Staff put the part on ``place`` (a done laser part gets its pickup here)."""
    now = now or datetime.now(UTC)
    places = site_places(db, job.site_id)
    place = place.strip()
    if places and place not in places:
        raise PickupRefused(N_("There is no place {place} at this site."), place=place)
    if not place or len(place) > 40:
        raise PickupRefused(N_("Name the place (at most 40 characters)."))
    pickup = start(db, job, now=now, actor_id=actor_id)
    if pickup is None:
        raise PickupRefused(N_("Job {id} is not done: there is no part to put on a shelf."),
                            id=job.id)
    if pickup.state != P.WAITING:
        raise PickupRefused(N_("The part of job {id} is already handed over or disposed of."),
                            id=job.id)
    pickup.place = place
    record(db, job, "pickup_place", actor_id=actor_id, data={"place": place})
    db.flush()
    _tell_ready(db, job, pickup, now)
    return pickup


def _move(db: Session, pickup: Pickup, from_states: set[PickupState], values: dict[str, Any]
          ) -> bool:
    res = db.execute(update(Pickup).where(Pickup.job_id == pickup.job_id,
                                          Pickup.state.in_([s.value for s in from_states]))
                     .values(**values).execution_options(synchronize_session=False))
    db.refresh(pickup)
    return res.rowcount == 1  # type: ignore[attr-defined]


def collect(db: Session, pickup: Pickup, *, actor_id: int, now: datetime | None = None
            ) -> bool:
    """Handed over: ``collected`` with who confirmed it and when; False if it already was."""
    now = now or datetime.now(UTC)
    done = _move(db, pickup, {P.WAITING, P.UNCOLLECTED},
                 {"state": P.COLLECTED.value, "collected_at": now,
                  "collected_by_id": actor_id})
    if done:
        job = db.get(Job, pickup.job_id)
        if job is not None:
            record(db, job, "pickup_collected", actor_id=actor_id)
    return done


def collect_batch(db: Session, batch: Batch, *, actor_id: int,
                  now: datetime | None = None) -> list[int]:
    """A teacher takes the whole class: every finished part of the batch is collected (a
    part never shelved too); returns the jobs handed over now."""
    now = now or datetime.now(UTC)
    out = []
    for job in db.scalars(select(Job).where(Job.batch_id == batch.id,
                                            Job.status == JobStatus.DONE)):
        pickup = start(db, job, now=now, actor_id=actor_id)
        db.flush()
        if pickup is not None and collect(db, pickup, actor_id=actor_id, now=now):
            out.append(job.id)
    return out


def dispose(db: Session, pickup: Pickup, *, actor_id: int, now: datetime | None = None
            ) -> bool:
    now = now or datetime.now(UTC)
    done = _move(db, pickup, {P.UNCOLLECTED}, {"state": P.DISPOSED.value,
                                               "disposed_at": now, "disposed_by_id": actor_id})
    if done:
        job = db.get(Job, pickup.job_id)
        if job is not None:
            record(db, job, "pickup_disposed", actor_id=actor_id)
    return done


def remind_all(db: Session, cfg: Settings, now: datetime) -> dict[str, int]:
    """Reminders and the uncollected mark that are due ``now`` (idempotent)."""
    days = parse_days(cfg.pickup_remind_days)
    counts = {"reminded": 0, "uncollected": 0}
    for pickup in db.scalars(select(Pickup).where(Pickup.state == P.WAITING)).all():
        job = db.get(Job, pickup.job_id)
        if job is None:
            continue
        since = aware(pickup.since)
        place = pickup.place or (db.get(Site, job.site_id).name if job.site_id else "")
        params = {"job": job.id, "place": place, "since": since.isoformat()}
        if uncollected_due(since, now, cfg.pickup_keep_days):
            if _move(db, pickup, {P.WAITING}, {"state": P.UNCOLLECTED.value,
                                               "uncollected_at": now}):
                record(db, job, "pickup_uncollected")
                publish(db, "uncollected", site=job.site_id, user_ids=[recipient(db, job)],
                        params=params, dedupe=f"uncollected:{job.id}", now=now)
                counts["uncollected"] += 1
            continue
        n = reminder_due(since, now, days, pickup.reminders_sent)
        if n is None:
            continue
        res = db.execute(update(Pickup).where(Pickup.job_id == pickup.job_id,
                                              Pickup.state == P.WAITING,
                                              Pickup.reminders_sent == pickup.reminders_sent)
                         .values(reminders_sent=n).execution_options(
                             synchronize_session=False))
        if res.rowcount == 1:  # type: ignore[attr-defined]
            publish(db, "pickup_reminder", site=job.site_id, user_ids=[recipient(db, job)],
                    params=params, dedupe=f"pickup_reminder:{job.id}:{n}", now=now)
            counts["reminded"] += 1
    return counts


def remind(ctx: Any, now: datetime) -> dict[str, int]:
    """The periodic task (``queue.periodic``)."""
    with ctx.db.sessionmaker() as s, s.begin():
        return remind_all(s, ctx.settings, now)
