"""Pickup and quiet-hour rules (pure): free places, when reminders and the uncollected mark
are due, when a message held by the night may go out (the lab's zone, DST included)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from fabqueue.core.pickup import (
    check_places,
    next_free_place,
    parse_days,
    reminder_due,
    uncollected_due,
)
from fabqueue.core.quiet import held_until, parse_span
from fabqueue.store.inventory import SiteIn

VILNIUS = ZoneInfo("Europe/Vilnius")
SINCE = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def test_the_next_free_place_follows_the_sites_order() -> None:
    assert next_free_place(["A1", "A2", "B1"], ["A1", None]) == "A2"
    assert next_free_place(["A1", "A2"], ["A2", "A1"]) is None
    assert next_free_place([], []) is None


def test_reminder_days_and_keeping_time() -> None:
    assert parse_days("3,10") == (3, 10)
    assert parse_days(" 10 ; 3,3") == (3, 10)
    with pytest.raises(ValueError):
        parse_days("0,3")
    assert reminder_due(SINCE, SINCE + timedelta(days=2, hours=23), (3, 10), 0) is None
    assert reminder_due(SINCE, SINCE + timedelta(days=3), (3, 10), 0) == 1
    assert reminder_due(SINCE, SINCE + timedelta(days=4), (3, 10), 1) is None
    # a run missed for days sends the latest reminder only, not a burst of two
    assert reminder_due(SINCE, SINCE + timedelta(days=11), (3, 10), 0) == 2
    assert not uncollected_due(SINCE, SINCE + timedelta(days=20, hours=23), 21)
    assert uncollected_due(SINCE, SINCE + timedelta(days=21), 21)


def test_places_in_the_devices_file_are_checked() -> None:
    assert check_places([" A1", "Ą2"]) == ["A1", "Ą2"]
    for bad in (["A1", "A1"], [""], ["x" * 41]):
        with pytest.raises(ValueError):
            check_places(bad)
    assert SiteIn(id="kc", places=["A1", "B1"], quiet_hours="22:00-07:30").places == ["A1", "B1"]
    for bad_site in ({"places": ["A1", " A1"]}, {"quiet_hours": "at night"},
                     {"quiet_hours": "25:00-07:00"}):
        with pytest.raises(ValidationError):
            SiteIn(id="kc", **bad_site)


def test_quiet_hours_hold_until_the_morning_in_the_labs_zone() -> None:
    span = parse_span("21:00-08:00")
    assert parse_span("off") is None and parse_span(None) is None
    evening = datetime(2026, 12, 8, 22, 30, tzinfo=VILNIUS)
    assert held_until(evening, span) == datetime(2026, 12, 9, 8, 0, tzinfo=VILNIUS)
    early = datetime(2026, 12, 9, 6, 0, tzinfo=VILNIUS)
    assert held_until(early, span) == datetime(2026, 12, 9, 8, 0, tzinfo=VILNIUS)
    assert held_until(datetime(2026, 12, 9, 8, 0, tzinfo=VILNIUS), span) is None
    assert held_until(datetime(2026, 12, 9, 20, 59, tzinfo=VILNIUS), span) is None
    # a quiet span within one day
    assert held_until(datetime(2026, 12, 9, 13, 0, tzinfo=VILNIUS),
                      parse_span("12:00-14:00")) == datetime(2026, 12, 9, 14, 0,
                                                             tzinfo=VILNIUS)
    # the night the clocks go back (25 October 2026): still 08:00 on the wall clock
    autumn = held_until(datetime(2026, 10, 24, 23, 0, tzinfo=VILNIUS), span)
    assert autumn is not None and autumn.hour == 8 and autumn.utcoffset() == timedelta(hours=2)
