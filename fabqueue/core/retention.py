"""What retention removes on a date (pure rules; ``store.retention`` applies them).

- a job's files (upload, thumbnail, program) once it ended ``files_days`` ago, counted from
  its pickup or, when it was never picked up, its end;
- pupils' names ``pupil_names_days`` after their class's end date (then only pseudonyms);
- an account inactive for ``inactive_days``: told ``notice_days`` before, then erased. It is
  erased only once it was told at least ``notice_days`` earlier, so a purge that did not run
  for a while never deletes anyone unwarned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum


@dataclass(frozen=True)
class Policy:
    files_days: int = 90
    pupil_names_days: int = 30
    inactive_days: int = 730
    notice_days: int = 30


class AccountStep(StrEnum):
    KEEP = "keep"
    TELL = "tell"
    ERASE = "erase"


class Kind(StrEnum):
    """What a purge counts (the keys of a purge record and of ``fabqueue purge``)."""
    JOB_FILES = "job_files"
    FILES = "files"
    PUPIL_NAMES = "pupil_names"
    ACCOUNTS_TOLD = "accounts_told"
    ACCOUNTS_ERASED = "accounts_erased"


def files_due(ended: datetime | None, picked_up: datetime | None, now: datetime,
              policy: Policy, *, owner_erased: bool = False) -> bool:
    """An ended job's files are due ``files_days`` after the pickup (or the end); at once
    when its owner was erased while it ran (it finished first, now it goes)."""
    start = picked_up or ended
    if start is None:
        return False
    if owner_erased:
        return True
    return now >= start + timedelta(days=policy.files_days)


def names_due(ends_on: date | None, today: date, policy: Policy) -> bool:
    return ends_on is not None and today > ends_on + timedelta(days=policy.pupil_names_days)


def account_step(last_active: datetime, told_at: datetime | None, now: datetime,
                 policy: Policy) -> AccountStep:
    """Told when ``notice_days`` remain; erased when the time is up and the notice is at
    least ``notice_days`` old. A notice from before the last activity no longer counts."""
    if told_at is not None and told_at < last_active:
        told_at = None
    deadline = last_active + timedelta(days=policy.inactive_days)
    notice = timedelta(days=policy.notice_days)
    if now < deadline - notice:
        return AccountStep.KEEP
    if told_at is None:
        return AccountStep.TELL
    if now >= deadline and now >= told_at + notice:
        return AccountStep.ERASE
    return AccountStep.KEEP
