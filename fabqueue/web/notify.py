"""E-mail notifications: when a job is done, rejected or needs attention, its owner gets an
e-mail in their language (when SMTP is configured and they have an address).

The web process listens to the same ``job:status`` events the pages use; web notifications
themselves are rows written by ``store.jobs.change_status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import smtplib
from email.message import EmailMessage
from typing import Any

from fabqueue.config import Settings
from fabqueue.core.findings import N_
from fabqueue.core.reasons import render
from fabqueue.i18n import DEFAULT_LOCALE, gettext
from fabqueue.notify.email import send  # the one SMTP sender (the outbox uses it too)
from fabqueue.store.jobs import NOTIFY_ON
from fabqueue.store.models import Job, User
from fabqueue.web.broker import Broker
from fabqueue.web.pages.labels import NOTIFICATIONS

log = logging.getLogger(__name__)

SUBJECT = N_("FabQueue: job #{job} ({file})")
FOOTER = N_("See the job: {url}")
SIGNATURE = N_("This message was sent by FabQueue. You get it because you submitted the job.")


def compose(kind: str, *, job_id: int, file_name: str, reason: str | None, locale: str,
            to: str, sender: str, base_url: str) -> EmailMessage:
    """One notification e-mail, every line in the reader's language."""
    t = lambda s: gettext(locale, s)  # noqa: E731
    msg = EmailMessage()
    msg["Subject"] = t(SUBJECT).format(job=job_id, file=file_name)
    msg["From"] = sender
    msg["To"] = to
    body = [t(NOTIFICATIONS[kind]).format(job=job_id, reason=render(reason, t)), "",
            t(FOOTER).format(url=f"{base_url.rstrip('/')}/jobs/{job_id}"), "", t(SIGNATURE)]
    msg.set_content("\n".join(body))
    return msg


def message_for_event(db: Any, settings: Settings, event: dict[str, Any],
                      base_url: str) -> EmailMessage | None:
    """The e-mail a ``job:status`` event calls for, or None (no address, nothing to say)."""
    data = event.get("data") or {}
    if event.get("topic") != "job:status":
        return None
    kind = NOTIFY_ON.get(data.get("to"))  # type: ignore[call-overload]
    if not kind or kind not in NOTIFICATIONS:
        return None
    with db.sessionmaker() as s:
        job = s.get(Job, data.get("job"))
        owner = s.get(User, job.owner_id) if job else None
        if job is None or owner is None or not owner.email or owner.disabled:
            return None
        return compose(kind, job_id=job.id, file_name=job.file_name,
                       reason=data.get("reason"), locale=owner.locale or DEFAULT_LOCALE,
                       to=owner.email, sender=settings.smtp_from, base_url=base_url)


def _broker(app: Any) -> Broker:
    """The web process's one event subscription (shared with /api/events)."""
    broker = getattr(app.state, "broker", None)
    if broker is None:
        broker = app.state.broker = Broker(app.state.ctx.redis_url)
    return broker


async def mail_loop(app: Any) -> None:
    """Run in the web process: e-mail owners as their jobs change (SMTP in a thread)."""
    settings: Settings = app.state.settings
    # The address people open FabQueue at (for the link in the e-mail).
    base_url = (getattr(settings, "public_url", None) or os.environ.get("FABQUEUE_PUBLIC_URL")
                or "http://127.0.0.1:8000")
    queue = _broker(app).subscribe()
    try:
        while True:
            event = await queue.get()
            try:
                msg = message_for_event(app.state.db, settings, event, base_url)
                if msg is not None:
                    await asyncio.to_thread(send, settings, msg)
            except (OSError, smtplib.SMTPException) as exc:
                log.warning("could not e-mail about %s: %s", event.get("data"), exc)
            except Exception:  # one bad address or row must not stop every later e-mail
                log.warning("could not e-mail about %s", event.get("data"), exc_info=True)
    finally:
        _broker(app).unsubscribe(queue)


def start(app: Any) -> asyncio.Task[None] | None:
    if not app.state.settings.smtp_host:
        return None
    return asyncio.create_task(mail_loop(app))


async def stop(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
