"""Template rendering with the reader's language, CSRF token and formatting helpers."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.numbers import format_decimal
from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from fabqueue.i18n import LANGUAGE_NAMES, LOCALES, babel_locale, translations
from fabqueue.web.deps import csrf_token, request_locale

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
templates = Jinja2Templates(directory=TEMPLATES)
templates.env.autoescape = True


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m = rem // 60
    return f"{h} h {m:02d} min" if h else f"{max(m, 1 if s else 0)} min"


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    user = context.get("user") or getattr(request.state, "user", None)
    locale = request_locale(request, user)
    tz = ZoneInfo(request.app.state.settings.timezone)
    bl = babel_locale(locale)

    def fmt_dt(value: datetime | None) -> str:
        if value is None:
            return "–"
        return format_datetime(value.astimezone(tz), "short", locale=bl)

    def fmt_num(value: float | None, digits: int = 1) -> str:
        if value is None:
            return "–"
        return format_decimal(round(float(value), digits), locale=bl)

    env_translations = translations(locale)
    context.update(
        request=request, user=user, locale=locale, locales=LOCALES, language_names=LANGUAGE_NAMES,
        csrf_token=csrf_token(request), fmt_dt=fmt_dt, fmt_num=fmt_num,
        fmt_duration=fmt_duration, currency=request.app.state.settings.currency,
        _=env_translations.gettext, ngettext=env_translations.ngettext,
    )
    return templates.TemplateResponse(request, name, context, status_code=status_code)
