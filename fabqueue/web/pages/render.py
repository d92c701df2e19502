"""Template rendering with the reader's language, CSRF token and formatting helpers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.numbers import format_decimal
from fastapi import Request
from fastapi.templating import Jinja2Templates
from sqlalchemy import func, select
from sqlalchemy.orm import object_session
from starlette.responses import Response

from fabqueue.core.reasons import render as render_reason
from fabqueue.i18n import LANGUAGE_NAMES, LOCALES, babel_locale, translations
from fabqueue.store.models import Notification, User
from fabqueue.web.deps import csrf_token, request_locale
from fabqueue.web.pages import labels

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
templates = Jinja2Templates(directory=TEMPLATES)
templates.env.autoescape = True

LABEL_TABLES: dict[str, dict[str, str]] = {
    "status": labels.JOB_STATUS, "device": labels.DEVICE_STATE, "action": labels.ACTIONS,
    "kind": labels.KIND, "operation": labels.OPERATIONS, "role": labels.ROLES,
    "notification": labels.NOTIFICATIONS, "temperature": labels.TEMPERATURES,
    "driver": labels.DRIVERS,
}


def fmt_duration(seconds: float | None, unit: Callable[[str], str] = lambda u: u) -> str:
    if seconds is None:
        return "–"
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m = rem // 60
    return (f"{h} {unit('h')} {m:02d} {unit('min')}" if h
            else f"{max(m, 1 if s else 0)} {unit('min')}")


def unread_count(user: User | None) -> int:
    """Unread notifications, on the request's own session (the one that loaded ``user``):
    a second connection per request could exhaust the pool under load and deadlock."""
    session = object_session(user) if user is not None else None
    if user is None or session is None:
        return 0
    return int(session.scalar(select(func.count()).select_from(Notification).where(
        Notification.user_id == user.id, Notification.read.is_(False))) or 0)


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    user = context.get("user") or getattr(request.state, "user", None)
    locale = request_locale(request, user)
    tz = ZoneInfo(request.app.state.settings.timezone)
    bl = babel_locale(locale)
    tr = translations(locale)

    def fmt_dt(value: datetime | float | str | None) -> str:
        if value is None:
            return "–"
        if isinstance(value, str):  # ISO 8601 from the API helpers
            value = datetime.fromisoformat(value)
        if isinstance(value, int | float):
            value = datetime.fromtimestamp(value, UTC)
        if value.tzinfo is None:  # SQLite forgets the zone: stored values are UTC
            value = value.replace(tzinfo=UTC)
        return format_datetime(value.astimezone(tz), "short", locale=bl)

    def fmt_num(value: float | None, digits: int = 1) -> str:
        if value is None:
            return "–"
        return format_decimal(round(float(value), digits), locale=bl)

    def label(table: str, code: str | None) -> str:
        if code is None:
            return "–"
        msgid = LABEL_TABLES[table].get(code)
        return tr.gettext(msgid) if msgid else code

    def unit(u: str) -> str:
        msgid = labels.UNITS.get(u)
        return tr.gettext(msgid) if msgid else u

    def material_name(m: Any) -> str:
        """Built-in materials' names are msgids; a site's own name is shown as written."""
        return tr.gettext(m.name or m.id) if m is not None else "–"

    context.update(
        material_name=material_name, reason=lambda stored: render_reason(stored, tr.gettext),
        request=request, user=user, locale=locale, locales=LOCALES, language_names=LANGUAGE_NAMES,
        csrf_token=csrf_token(request), fmt_dt=fmt_dt, fmt_num=fmt_num,
        fmt_duration=lambda s: fmt_duration(s, unit), unit=unit,
        currency=request.app.state.settings.currency,
        label=label, unread=unread_count(user),
        _=tr.gettext, gettext=tr.gettext, ngettext=tr.ngettext,
    )
    return templates.TemplateResponse(request, name, context, status_code=status_code)
