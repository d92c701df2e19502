"""Pupils of a class batch as the web shows them: pseudonyms for everyone outside the class's
circle, names for its teacher, its site's staff and admins (``core.pupils``)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from fabqueue.config import Settings
from fabqueue.core.pupils import (
    class_code,
    default_ends_on,
    may_read_names,
    pseudonym,
)
from fabqueue.store.models import Batch, Job, User
from fabqueue.web.deps import ApiError


class Pupils:
    """Numbers the pupils of one class as their files are accepted: one pseudonym per pupil
    (two files of Ona are both ``8B-01``), in the order of the hand-in."""

    def __init__(self, class_name: str) -> None:
        self.code = class_code(class_name)
        self.numbers: dict[str, int] = {}
        self.count = 0

    def of(self, name: str | None) -> str:
        key = " ".join((name or "").split()).casefold()
        if key and key in self.numbers:
            return pseudonym(self.code, self.numbers[key])
        self.count += 1
        if key:
            self.numbers[key] = self.count
        return pseudonym(self.code, self.count)


def batch_names_visible(viewer: User | None, batch: Batch | None) -> bool:
    if viewer is None or batch is None:
        return False
    return may_read_names(role=viewer.role, user_id=viewer.id, user_site=viewer.site_id,
                          teacher_id=batch.teacher_id, batch_site=batch.site_id)


def job_names_visible(viewer: User | None, job: Job) -> bool:
    """A job outside a class has no pupil: nothing to hide."""
    if job.batch_id is None:
        return True
    return batch_names_visible(viewer, job.batch)


def shown_file_name(job: Job, names: bool) -> str:
    """A pupil's file is often named after the pupil: others see the pseudonym instead."""
    if names or job.batch_id is None or not job.pupil:
        return job.file_name
    return f"{job.pupil}.{job.file_format}"


def lab_today(settings: Settings, now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(ZoneInfo(settings.timezone)).date()


def ends_on_field(raw: str | None, settings: Settings) -> date:
    """The class's end date from a form (``YYYY-MM-DD``), or the end of this school year."""
    if not raw or not raw.strip():
        return default_ends_on(lab_today(settings))
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        raise ApiError(422, "The end date must be a date like 2027-06-30.") from None


def form_flag(raw: str | None) -> bool:
    """A checkbox or API field: ``on``, ``true``, ``1``, ``yes`` mean yes."""
    return (raw or "").strip().lower() in ("on", "true", "1", "yes")


def iso_day(value: date | None) -> str | None:
    return value.isoformat() if value else None
