"""Notices for the people who look after a site's machines: its staff and every admin.

Used where a machine itself has something to tell (a maintenance task due, a controller
setting FabQueue changed at connect): a row in each of their notification lists, rendered in
the reader's language from the stored kind and parameters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabqueue.store.models import Notification, User


def site_keepers(s: Session, site_id: str | None) -> list[User]:
    """Enabled staff of ``site_id`` and all enabled admins."""
    people = s.scalars(select(User).where(User.role.in_(("staff", "admin")),
                                          User.disabled.is_(False)).order_by(User.id))
    return [u for u in people if u.role == "admin" or u.site_id == site_id]


def tell_site_keepers(s: Session, site_id: str | None, kind: str, params: dict[str, Any],
                      at: datetime | None = None) -> int:
    """One notification of ``kind`` for each of the site's keepers; returns how many."""
    people = site_keepers(s, site_id)
    for u in people:
        row = Notification(user_id=u.id, kind=kind, text=kind, params=params)
        if at is not None:
            row.at = at
        s.add(row)
    return len(people)
