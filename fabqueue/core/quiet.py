"""Quiet hours (pure): no message at night; what falls inside is held until the morning."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta

_SPAN = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def parse_span(text: str | None) -> tuple[time, time] | None:
    """``"21:00-08:00"`` → (21:00, 08:00); empty or ``"off"`` → None (never quiet)."""
    if not text or text.strip().lower() in ("off", "none"):
        return None
    m = _SPAN.match(text)
    if not m:
        raise ValueError(f"quiet hours must look like 21:00-08:00, not {text!r}")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise ValueError(f"quiet hours must look like 21:00-08:00, not {text!r}")
    return time(h1, m1), time(h2, m2)


def held_until(local_now: datetime, span: tuple[time, time] | None) -> datetime | None:
    """When a message due at ``local_now`` (aware, in the lab's zone) may go out: None when
    now is outside the quiet hours, else the end of them (the same zone)."""
    if span is None:
        return None
    start, end = span
    t = local_now.timetz().replace(tzinfo=None)
    if start == end:
        return None
    overnight = start > end
    inside = (t >= start or t < end) if overnight else (start <= t < end)
    if not inside:
        return None
    day = local_now.date()
    if overnight and t >= start:
        day += timedelta(days=1)
    # built from the date (not local_now + delta) so a DST change lands on the wall clock
    return datetime.combine(day, end, tzinfo=local_now.tzinfo)
