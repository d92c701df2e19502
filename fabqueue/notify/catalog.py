"""The events people can be told about, and one message template per event (gettext msgids:
each message is rendered in the reader's language when it is sent, from codes and params)."""

from __future__ import annotations

import string
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime

from fabqueue.core.findings import N_
from fabqueue.core.reasons import render

#: The event ids of the API (``GET/PUT /api/me/notifications``): the contract.
EVENTS: tuple[str, ...] = (
    "approval_needed", "approved", "rejected", "ready_for_pickup", "pickup_reminder",
    "uncollected", "filament_low", "maintenance_due", "training_expiring", "machine_error",
)

#: Events for the lab's staff: they also reach the site's own channels (``apprise_urls``
#: under ``[[site]]``) and the site's staff who chose them.
STAFF_EVENTS: frozenset[str] = frozenset(
    {"approval_needed", "uncollected", "filament_low", "maintenance_due", "machine_error"})

#: What a user who never chose gets (on their e-mail address, when they gave one).
DEFAULT_EVENTS: tuple[str, ...] = (
    "approved", "rejected", "ready_for_pickup", "pickup_reminder", "uncollected",
    "training_expiring")

#: Params that would name a pupil or carry a picture: never stored in a message.
PRIVATE_PARAMS: frozenset[str] = frozenset(
    {"student_name", "student", "pupil", "thumbnail", "image", "file_name"})

TITLES: dict[str, str] = {
    "approval_needed": N_("FabQueue: a job waits for approval"),
    "approved": N_("FabQueue: job #{job} is approved"),
    "rejected": N_("FabQueue: job #{job} is rejected"),
    "ready_for_pickup": N_("FabQueue: job #{job} is ready for pickup"),
    "pickup_reminder": N_("FabQueue: job #{job} still waits for you"),
    "uncollected": N_("FabQueue: job #{job} was not collected"),
    "filament_low": N_("FabQueue: filament is running low"),
    "maintenance_due": N_("FabQueue: maintenance is due"),
    "training_expiring": N_("FabQueue: a training expires soon"),
    "machine_error": N_("FabQueue: a machine reports an error"),
}

BODIES: dict[str, str] = {
    "approval_needed": N_("Job #{job} at {site} waits for approval."),
    "approved": N_("Job #{job} is approved and waits for a machine."),
    "rejected": N_("Job #{job} was rejected: {reason}"),
    "ready_for_pickup": N_("Job #{job} is ready for pickup at {place}."),
    "pickup_reminder": N_("Job #{job} still waits for you at {place} since {since}."),
    "uncollected": N_("Job #{job} was not collected from {place} since {since}; the lab may "
                      "dispose of it."),
    "filament_low": N_("{device}: {material} is running low ({grams} g left)."),
    "maintenance_due": N_("{device}: maintenance is due ({task})."),
    "training_expiring": N_("Your training {training} expires on {date}."),
    "machine_error": N_("{device} reports an error: {reason}"),
}

FOOTER = N_("See the job: {url}")


class _Blank(dict[str, Any]):
    """A template never fails on a param a publisher left out: it shows nothing there."""

    def __missing__(self, key: str) -> str:
        return ""


def _value(key: str, value: Any, locale: str, tz: ZoneInfo,
           t: Callable[[str], str]) -> Any:
    if key == "reason" and isinstance(value, str):
        return render(value, t)  # a stored reason code in the reader's words
    if key in ("since", "at") and isinstance(value, str):
        try:
            return format_datetime(datetime.fromisoformat(value).astimezone(tz), "short",
                                   locale=locale)
        except ValueError:
            return value
    if key == "date" and isinstance(value, str):
        try:
            return format_date(datetime.fromisoformat(value).date(), "medium", locale=locale)
        except ValueError:
            return value
    return value


def render_message(event: str, params: dict[str, Any], locale: str, tz: ZoneInfo,
                   gettext: Callable[[str, str], str],
                   base_url: str | None = None) -> tuple[str, str]:
    """(title, body) of ``event`` in ``locale``."""
    t = lambda s: gettext(locale, s)  # noqa: E731
    values = _Blank({k: _value(k, v, locale, tz, t) for k, v in params.items()
                     if k not in PRIVATE_PARAMS})
    fmt = string.Formatter()
    title = fmt.vformat(t(TITLES[event]), (), values)
    body = fmt.vformat(t(BODIES[event]), (), values)
    if base_url and params.get("job"):
        body += "\n\n" + fmt.vformat(t(FOOTER), (), {
            "url": f"{base_url.rstrip('/')}/jobs/{params['job']}"})
    return title, body
