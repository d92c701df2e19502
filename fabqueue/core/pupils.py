"""Pupils of a class batch: pseudonyms (``10B-07``), the class's end date, and who may read
their names (pure rules over plain values).

A pupil never has an account: a class batch numbers its pupils, and everywhere outside the
class's own circle (its teacher, staff of its site, admins) the pupil is only that number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date

from fabqueue.core.access import Role

#: The last day of a school year (the default end of a class batch): 30 June.
SCHOOL_YEAR_END = (6, 30)
_NOT_CODE = re.compile(r"[^0-9A-Z]+")


def class_code(class_name: str) -> str:
    """``8b`` → ``8B``; ``10 B (fizika)`` → ``10BFIZIKA``: letters and digits, upper case,
    at most 12 (a pseudonym must stay short on a 390 px label). Letters outside A–Z (ė, ж)
    are dropped, so a code reads the same on every keyboard."""
    code = _NOT_CODE.sub("", class_name.upper())[:12]
    return code or "CLASS"


def pseudonym(code: str, number: int) -> str:
    return f"{code}-{number:02d}"


def number_pupils(names: Iterable[str | None]) -> list[int]:
    """A number per file, 1-based: files of the same pupil (same name, case and spacing
    aside) share it; a file without a name is a pupil of its own."""
    seen: dict[str, int] = {}
    out: list[int] = []
    count = 0
    for name in names:
        key = " ".join((name or "").split()).casefold()
        if key and key in seen:
            out.append(seen[key])
            continue
        count += 1
        if key:
            seen[key] = count
        out.append(count)
    return out


def default_ends_on(created: date) -> date:
    """The end of the school year the class was handed in: 30 June (a class handed in from
    July on belongs to the year that ends next June)."""
    month, day = SCHOOL_YEAR_END
    year = created.year + (1 if (created.month, created.day) > SCHOOL_YEAR_END else 0)
    return date(year, month, day)


def may_read_names(*, role: str, user_id: int, user_site: str | None,
                   teacher_id: int | None, batch_site: str | None) -> bool:
    """The class's teacher, staff of the class's site, and admins read pupils' names;
    everyone else (other sites, residents, the board, the live stream) their pseudonyms."""
    if role == Role.ADMIN:
        return True
    if teacher_id is not None and user_id == teacher_id:
        return True
    return role == Role.STAFF and batch_site is not None and batch_site == user_site
