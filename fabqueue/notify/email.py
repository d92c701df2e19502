"""E-mail over FabQueue's own SMTP server (``FABQUEUE_SMTP_HOST``): the one sender both the
job-status mail loop (``web.notify``) and the notification outbox use."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from fabqueue.config import Settings


def send(settings: Settings, message: EmailMessage, timeout_s: float = 10.0) -> None:
    if not settings.smtp_host:
        raise RuntimeError("SMTP is not configured (FABQUEUE_SMTP_HOST)")
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout_s) as smtp:
        smtp.send_message(message)


def message(*, sender: str, to: str, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = to
    msg.set_content(body)
    return msg
