"""Sending what the outbox holds: each due message to its channel (Apprise, or e-mail over
FabQueue's SMTP), outside any transaction; a failure is tried again later with back-off and,
after ``FABQUEUE_NOTIFY_ATTEMPTS`` tries, shown to admins as failed. Runs in the periodic
thread of ``serve``, never in a request or a machine's worker."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import apprise
from sqlalchemy import select, update

from fabqueue.config import Settings
from fabqueue.i18n import gettext
from fabqueue.notify import email
from fabqueue.notify.catalog import render_message
from fabqueue.notify.outbox import EMAIL
from fabqueue.store.models import User
from fabqueue.store.models_pickup import Delivery

log = logging.getLogger(__name__)

BATCH = 50  # messages per run: a long backlog drains over a few turns, the rest wait
MAX_BACKOFF_S = 3600


@dataclass(frozen=True)
class Due:
    id: int
    event: str
    channel: str
    locale: str
    params: dict[str, Any]
    attempts: int
    to: str | None  # the e-mail address, for the e-mail channel


def backoff(attempts: int) -> timedelta:
    """1, 2, 4 … minutes after the 1st, 2nd, 3rd … failure, at most an hour."""
    return timedelta(seconds=min(60 * 2 ** max(attempts - 1, 0), MAX_BACKOFF_S))


def redact(channel: str) -> str:
    """A channel as admins may see it: the service and host, never a token or password."""
    if channel == EMAIL:
        return "e-mail"
    try:
        return apprise.Apprise.instantiate(channel).url(privacy=True)
    except Exception:
        return channel.split("://", 1)[0] + "://…"


def _send_apprise(url: str, title: str, body: str) -> str | None:
    """None when sent, else why not (without the URL: it may hold a secret)."""
    app = apprise.Apprise()
    if not app.add(url):
        return "not a channel Apprise knows"
    with apprise.LogCapture(level=logging.WARNING) as logs:
        ok = app.notify(title=title, body=body)
        text = logs.getvalue().strip() if hasattr(logs, "getvalue") else ""
    return None if ok else (text.splitlines()[-1] if text else "the channel refused it")


def send_one(due: Due, cfg: Settings) -> str | None:
    title, body = render_message(due.event, due.params, due.locale, ZoneInfo(cfg.timezone),
                                 gettext, base_url=cfg.public_url)
    if due.channel == EMAIL:
        if not due.to:
            return "the user has no e-mail address"
        try:
            email.send(cfg, email.message(sender=cfg.smtp_from, to=due.to, subject=title,
                                          body=body))
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return None
    try:
        return _send_apprise(due.channel, title, body)
    except Exception as exc:  # a broken plugin is one failed channel, not a stopped sender
        return f"{type(exc).__name__}: {exc}"


def _due(db: Any, now: datetime) -> list[Due]:
    with db.sessionmaker() as s:
        rows = s.scalars(select(Delivery).where(Delivery.state == "pending",
                                                Delivery.not_before <= now)
                         .order_by(Delivery.not_before, Delivery.id).limit(BATCH)).all()
        out = []
        for r in rows:
            user = s.get(User, r.user_id) if r.user_id else None
            out.append(Due(r.id, r.event, r.channel, r.locale, dict(r.params or {}),
                           r.attempts, user.email if user else None))
        return out


def deliver_due(db: Any, cfg: Settings, now: datetime | None = None) -> dict[str, int]:
    """Send every due message once; returns counts (sent, retry, failed)."""
    # in UTC: SQLite keeps times as text without their zone, so they compare as written
    now = (now or datetime.now(UTC)).astimezone(UTC)
    counts = {"sent": 0, "retry": 0, "failed": 0}
    for due in _due(db, now):
        error = send_one(due, cfg)
        attempts = due.attempts + 1
        if error is None:
            values: dict[str, Any] = {"state": "sent", "sent_at": now, "attempts": attempts,
                                      "last_error": None}
            counts["sent"] += 1
        elif attempts >= cfg.notify_attempts:
            values = {"state": "failed", "attempts": attempts, "last_error": error[:500]}
            counts["failed"] += 1
            log.warning("notification %s to %s failed for good: %s", due.id,
                        redact(due.channel), error)
        else:
            values = {"attempts": attempts, "last_error": error[:500],
                      "not_before": now + backoff(attempts)}
            counts["retry"] += 1
        with db.sessionmaker() as s, s.begin():
            # only a row still pending as we read it: a doubled run never sends twice and
            # then marks over the other's result
            s.execute(update(Delivery).where(Delivery.id == due.id,
                                             Delivery.state == "pending",
                                             Delivery.attempts == due.attempts)
                      .values(**values))
    return counts


def deliver(ctx: Any, now: datetime) -> dict[str, int]:
    """The periodic task (``queue.periodic``)."""
    return deliver_due(ctx.db, ctx.settings, now)
