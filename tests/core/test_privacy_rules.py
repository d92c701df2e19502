"""Pupils' pseudonyms, who reads names, and what retention removes on a date (pure rules)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from fabqueue.core.pupils import (
    class_code,
    default_ends_on,
    may_read_names,
    number_pupils,
    pseudonym,
)
from fabqueue.core.retention import AccountStep, Policy, account_step, files_due, names_due

T0 = datetime(2027, 3, 10, 9, 0, tzinfo=UTC)
POLICY = Policy(files_days=90, pupil_names_days=30, inactive_days=730, notice_days=30)


@pytest.mark.parametrize(("name", "code"), [
    ("10b", "10B"), ("8 b", "8B"), ("10B (fizika)", "10BFIZIKA"), ("ėžš", "CLASS"),
    ("", "CLASS"), ("a" * 40, "A" * 12),
])
def test_class_code_is_short_upper_ascii(name: str, code: str) -> None:
    assert class_code(name) == code


def test_pseudonym_has_two_digits() -> None:
    assert pseudonym("10B", 7) == "10B-07"
    assert pseudonym("10B", 123) == "10B-123"


def test_files_of_one_pupil_share_a_number() -> None:
    names = ["Ona Petraitytė", "Jonas", "  ona   petraitytė ", None, "", "Jonas"]
    assert number_pupils(names) == [1, 2, 1, 3, 4, 2]


@pytest.mark.parametrize(("created", "ends"), [
    (date(2026, 9, 1), date(2027, 6, 30)), (date(2027, 3, 10), date(2027, 6, 30)),
    (date(2027, 6, 30), date(2027, 6, 30)), (date(2027, 7, 1), date(2028, 6, 30)),
    (date(2026, 12, 31), date(2027, 6, 30)),
])
def test_a_class_ends_with_its_school_year(created: date, ends: date) -> None:
    assert default_ends_on(created) == ends


# (role, user id, user site) → may read the names of class 8 (teacher 5, site "kc")
NAME_MATRIX = [
    ("admin", 1, None, True), ("teacher", 5, "kc", True), ("teacher", 6, "kc", False),
    ("staff", 2, "kc", True), ("staff", 3, "school-b", False), ("resident", 9, None, False),
    ("resident", 5, None, True),  # the teacher id is what counts, whatever the role now
]


@pytest.mark.parametrize(("role", "uid", "site", "allowed"), NAME_MATRIX)
def test_who_reads_pupils_names(role: str, uid: int, site: str | None, allowed: bool) -> None:
    assert may_read_names(role=role, user_id=uid, user_site=site, teacher_id=5,
                          batch_site="kc") is allowed


def test_a_class_without_a_site_shows_names_to_no_staff() -> None:
    assert not may_read_names(role="staff", user_id=2, user_site="kc", teacher_id=5,
                              batch_site=None)
    assert may_read_names(role="teacher", user_id=5, user_site="kc", teacher_id=5,
                          batch_site=None)


def test_files_go_90_days_after_pickup_or_end() -> None:
    assert not files_due(None, None, T0, POLICY)  # never ended
    assert not files_due(T0, None, T0 + timedelta(days=89, hours=23), POLICY)
    assert files_due(T0, None, T0 + timedelta(days=90), POLICY)
    # a pickup later than the end counts from the pickup
    picked = T0 + timedelta(days=20)
    assert not files_due(T0, picked, T0 + timedelta(days=100), POLICY)
    assert files_due(T0, picked, picked + timedelta(days=90), POLICY)
    # the owner was erased while it ran: its files go as soon as it ended
    assert files_due(T0, None, T0, POLICY, owner_erased=True)


def test_names_go_30_days_after_the_class_ended() -> None:
    ends = date(2027, 6, 30)
    assert not names_due(None, date(2030, 1, 1), POLICY)
    assert not names_due(ends, date(2027, 7, 30), POLICY)
    assert names_due(ends, date(2027, 7, 31), POLICY)


def test_an_inactive_account_is_told_then_erased() -> None:
    last = T0
    deadline = last + timedelta(days=730)
    assert account_step(last, None, deadline - timedelta(days=31), POLICY) == AccountStep.KEEP
    assert account_step(last, None, deadline - timedelta(days=30), POLICY) == AccountStep.TELL
    told = deadline - timedelta(days=30)
    assert account_step(last, told, deadline - timedelta(days=1), POLICY) == AccountStep.KEEP
    assert account_step(last, told, deadline, POLICY) == AccountStep.ERASE


def test_nobody_is_erased_unwarned_after_a_pause_of_the_purge() -> None:
    """The purge did not run for a year: the first run tells, the erasure waits 30 days."""
    now = T0 + timedelta(days=1100)
    assert account_step(T0, None, now, POLICY) == AccountStep.TELL
    assert account_step(T0, now, now + timedelta(days=29), POLICY) == AccountStep.KEEP
    assert account_step(T0, now, now + timedelta(days=30), POLICY) == AccountStep.ERASE


def test_activity_after_the_notice_starts_the_count_again() -> None:
    told = T0 + timedelta(days=700)
    came_back = told + timedelta(days=5)
    later = came_back + timedelta(days=100)
    assert account_step(came_back, told, later, POLICY) == AccountStep.KEEP
