"""Trainings: which machines a training covers, and whether a grant holds on a given day.

Pure rules over plain data (the store keeps the rows; dates are the lab's local dates, which
the caller works out in ``settings.timezone``). A grant is never deleted: it is ``valid``,
``expired`` or ``revoked``; a revoked grant stays revoked however it was used.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum

#: Days before the end at which the holder is told that a training lapses; then on the day.
EXPIRY_NOTICE_DAYS = 30


class GrantState(StrEnum):
    VALID = "valid"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class Training:
    id: str
    devices: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    valid_days: int = 0  # 0: never expires
    renew_on_use: bool = False
    staff: bool = False  # True: staff need it too (admins never do)
    name: dict[str, str] = field(default_factory=dict)

    def covers(self, device_id: str, kind: str) -> bool:
        """By the machine's id, or by its kind (every laser of every site)."""
        return device_id in self.devices or kind in self.kinds

    def title(self, locale: str) -> str:
        """The name in the reader's language, then English, then any, then the id."""
        return (self.name.get(locale) or self.name.get("en")
                or next(iter(self.name.values()), "") or self.id)


@dataclass(frozen=True)
class Grant:
    training_id: str
    on: date  # the day it was granted (the lab's date)
    last_used: date | None = None  # the last day its holder operated a covered machine
    revoked: bool = False


def expires_on(t: Training, g: Grant) -> date | None:
    """The first day the grant no longer holds; None when it never expires. Using a machine
    within the period restarts the period, when the training renews on use."""
    if t.valid_days <= 0:
        return None
    start = g.on
    if t.renew_on_use and g.last_used is not None and g.last_used > start:
        start = g.last_used
    return start + timedelta(days=t.valid_days)


def grant_state(t: Training, g: Grant, today: date) -> GrantState:
    if g.revoked:
        return GrantState.REVOKED
    end = expires_on(t, g)
    if g.on > today:  # granted for a later day (an import with a future date): not yet
        return GrantState.EXPIRED
    return GrantState.VALID if end is None or today < end else GrantState.EXPIRED


def covering(trainings: Iterable[Training], device_id: str, kind: str) -> list[Training]:
    return [t for t in trainings if t.covers(device_id, kind)]


def expiry_notice(t: Training, g: Grant, today: date) -> str | None:
    """``"soon"`` exactly ``EXPIRY_NOTICE_DAYS`` before the end (or the first day inside that
    window, for a grant made late), ``"today"`` on the last valid day; else None. The caller
    records what it sent, so a doubled run sends nothing twice."""
    end = expires_on(t, g)
    if end is None or g.revoked or grant_state(t, g, today) != GrantState.VALID:
        return None
    left = (end - today).days
    if left == 1:
        return "today"
    if left <= EXPIRY_NOTICE_DAYS:
        return "soon"
    return None
