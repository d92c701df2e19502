"""Pickup rules (pure): which shelf place is free, when a reminder or the uncollected mark is
due. The store and the periodic task decide from these; no I/O here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from enum import StrEnum


class PickupState(StrEnum):
    WAITING = "waiting"  # on a shelf place (or still to be shelved), the owner is told
    COLLECTED = "collected"  # handed over: who confirmed it and when are recorded
    UNCOLLECTED = "uncollected"  # kept past the keeping time: on the staff disposal list
    DISPOSED = "disposed"  # staff threw it away or recycled it (recorded)


#: Parts still on a shelf: their places are taken.
ON_SHELF: frozenset[PickupState] = frozenset({PickupState.WAITING, PickupState.UNCOLLECTED})


def parse_days(text: str) -> tuple[int, ...]:
    """``"3,10"`` → ``(3, 10)``: the reminder days, sorted, positive, without repeats."""
    days = sorted({int(p) for p in text.replace(";", ",").split(",") if p.strip()})
    if any(d <= 0 for d in days):
        raise ValueError(f"reminder days must be positive: {text!r}")
    return tuple(days)


def next_free_place(places: Sequence[str], taken: Iterable[str | None]) -> str | None:
    """The first place in the site's order that no part on a shelf holds (None: all full or
    the site lists none; staff then pick any place, two parts may share one)."""
    used = {p for p in taken if p}
    return next((p for p in places if p not in used), None)


def reminder_due(since: datetime, now: datetime, remind_days: Sequence[int],
                 sent: int) -> int | None:
    """The number of the reminder due now (1-based), or None. ``sent`` reminders were
    already sent; one missed run sends only the latest due one (never a burst)."""
    due = sum(1 for d in remind_days if now >= since + timedelta(days=d))
    return due if due > sent else None


def uncollected_due(since: datetime, now: datetime, keep_days: int) -> bool:
    return now >= since + timedelta(days=keep_days)


def check_places(places: Sequence[str]) -> list[str]:
    """A site's places as given, refused when one is empty, too long or listed twice (a
    label and a shelf must agree on one name)."""
    out: list[str] = []
    for p in places:
        name = p.strip()
        if not name or len(name) > 40:
            raise ValueError(f"a pickup place needs a name of 1–40 characters: {p!r}")
        if name in out:
            raise ValueError(f"the pickup place {name!r} is listed twice")
        out.append(name)
    return out
