"""Writing messages: ``publish`` puts one row per recipient channel in the outbox, in the
caller's transaction, so a message exists exactly when the change that caused it was
committed, and sending (``notify.sender``) never holds up that change."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabqueue.config import Settings
from fabqueue.core.access import Role
from fabqueue.core.quiet import held_until, parse_span
from fabqueue.notify.catalog import DEFAULT_EVENTS, EVENTS, PRIVATE_PARAMS, STAFF_EVENTS
from fabqueue.store.models import Site, User
from fabqueue.store.models_pickup import Delivery, NotificationPrefs

log = logging.getLogger(__name__)

EMAIL = "email:"  # the channel "the user's own e-mail address, over FabQueue's SMTP"
#: e-mailed already by the job-status mail loop (``web.notify``): not a second time
MAILED_BY_LOOP = frozenset({"rejected"})

_settings: Settings | None = None


def configure(settings: Settings) -> None:
    """The process's settings (quiet hours, default language, SMTP): set by the app and the
    queue context; without it the environment's are read."""
    global _settings
    _settings = settings


def settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = Settings()
    return _settings


def user_choice(db: Session, user: User) -> tuple[list[str], list[str]]:
    """(apprise_urls, events) the user chose, or the defaults."""
    prefs = db.get(NotificationPrefs, user.id)
    if prefs is None:
        return [], list(DEFAULT_EVENTS)
    return list(prefs.apprise_urls or []), list(prefs.events or [])


def _not_before(db: Session, site_id: str | None, now: datetime, cfg: Settings) -> datetime:
    site = db.get(Site, site_id) if site_id else None
    span = parse_span(site.quiet_hours if site and site.quiet_hours else cfg.quiet_hours)
    tz = ZoneInfo(cfg.timezone)
    until = held_until(now.astimezone(tz), span)
    return until.astimezone(UTC) if until else now


def _key(dedupe: str | None, who: str, channel: str) -> str | None:
    if not dedupe:
        return None
    digest = hashlib.sha256(channel.encode()).hexdigest()[:16]
    return f"{dedupe}:{who}:{digest}"[:200]


def publish(db: Session, event: str, *, site: str | None = None,
            user_ids: list[int] | None = None, params: dict[str, Any] | None = None,
            job_id: int | None = None, dedupe: str | None = None,
            now: datetime | None = None) -> int:
    """Tell the people concerned about ``event`` (an id of ``catalog.EVENTS``).

    ``user_ids``: the users it is about (each gets it on the channels they chose, if they
    want this event); ``site``: for a staff event, also the site's own channels and the
    site's staff who chose it; the site's quiet hours hold it until morning. ``params``:
    plain values for the template (``job``, ``place``, ``reason`` (a stored reason),
    ``since``/``at``/``date`` as ISO text, ``device``…): never a name or an image.
    ``dedupe``: a key that makes a repeated call (doubled periodic run) write nothing.
    Returns the number of messages written; the caller commits them with its change."""
    if event not in EVENTS:
        raise ValueError(f"unknown notification event {event!r}")
    cfg = settings()
    now = (now or datetime.now(UTC)).astimezone(UTC)  # SQLite compares times as text
    clean = {k: v for k, v in (params or {}).items() if k not in PRIVATE_PARAMS}
    if job_id is None and isinstance(clean.get("job"), int):
        job_id = clean["job"]
    not_before = _not_before(db, site, now, cfg)
    rows: list[tuple[int | None, str, str]] = []  # (user, channel, locale)
    users: list[User] = [u for u in (db.get(User, i) for i in user_ids or []) if u]
    if site and event in STAFF_EVENTS:
        row = db.get(Site, site)
        for url in (row.apprise_urls or []) if row else []:
            rows.append((None, url, cfg.default_locale))
        staff = db.scalars(select(User).where(User.role.in_([Role.STAFF, Role.ADMIN]),
                                              User.site_id == site))
        chosen = {p.user_id for p in db.scalars(select(NotificationPrefs))
                  if event in (p.events or [])}
        users += [u for u in staff if u.id in chosen and u.id not in (user_ids or [])]
    for user in users:
        if user.disabled or getattr(user, "erased_at", None):
            continue
        urls, wanted = user_choice(db, user)
        if event not in wanted:
            continue
        locale = user.locale or cfg.default_locale
        channels = list(urls)
        if user.email and cfg.smtp_host and event not in MAILED_BY_LOOP:
            channels.append(EMAIL)
        rows.extend((user.id, c, locale) for c in channels)
    written = 0
    for user_id, channel, locale in rows:
        key = _key(dedupe, str(user_id or "site"), channel)
        if key and db.scalar(select(Delivery.id).where(Delivery.dedupe == key)):
            continue
        db.add(Delivery(event=event, user_id=user_id, site_id=site, job_id=job_id,
                        channel=channel, locale=locale, params=clean, state="pending",
                        not_before=not_before, created_at=now, dedupe=key))
        written += 1
    return written


def publish_quietly(db: Session, event: str, **kwargs: Any) -> int:
    """``publish`` for a caller whose own change must go on whatever happens here (a
    machine's worker writing its state): an error is logged, never raised."""
    try:
        return publish(db, event, **kwargs)
    except Exception:
        log.exception("could not write the notification %s", event)
        return 0


# -- job status changes become messages in the same commit ------------------------------

def _from_job_status(db: Session, data: dict[str, Any]) -> None:
    to, job, site = data.get("to"), data.get("job"), data.get("site")
    # a class's jobs were handed in by the teacher: the teacher is told, never a pupil
    recipient = data.get("teacher") or data.get("owner")
    if to == "awaiting_approval" and data.get("from") == "analyzing":
        publish(db, "approval_needed", site=site, params={"job": job, "site": site},
                dedupe=f"approval_needed:{job}")
    elif to == "approved" and data.get("from") == "awaiting_approval" and recipient:
        publish(db, "approved", site=site, user_ids=[recipient], params={"job": job},
                dedupe=f"approved:{job}")
    elif to == "rejected" and recipient:
        publish(db, "rejected", site=site, user_ids=[recipient],
                params={"job": job, "reason": data.get("reason") or ""})


def _from_device_state(db: Session, data: dict[str, Any]) -> None:
    if data.get("state") == "error" and data.get("site"):
        publish(db, "machine_error", site=data["site"],
                params={"device": data.get("device"), "reason": data.get("reason") or ""})


@sa_event.listens_for(Session, "before_commit")
def _outbox_before_commit(session: Session) -> None:
    """Turn the events this transaction will publish into messages, in the same commit."""
    pending = session.info.get("fabqueue_events") or []
    seen = session.info.get("fabqueue_notify_seen", 0)
    if len(pending) <= seen:
        return
    session.info["fabqueue_notify_seen"] = len(pending)
    for topic, data in pending[seen:]:
        try:
            if topic == "job:status":
                _from_job_status(session, data)
            elif topic == "device:state":
                _from_device_state(session, data)
        except Exception:  # a message never stops the change it is about
            log.exception("could not write the notification for %s %s", topic, data)


@sa_event.listens_for(Session, "after_commit")
@sa_event.listens_for(Session, "after_rollback")
def _outbox_reset(session: Session) -> None:
    session.info.pop("fabqueue_notify_seen", None)
