"""Roles and who may see or do what (pure rules over plain values)."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    RESIDENT = "resident"
    TEACHER = "teacher"
    STAFF = "staff"
    ADMIN = "admin"


#: Roles that work for a site and must name one.
SITE_ROLES = frozenset({Role.STAFF, Role.TEACHER})


def is_staff(role: str) -> bool:
    return role in (Role.STAFF, Role.ADMIN)


def can_view_job(
    *,
    role: str,
    user_id: int,
    user_site: str | None,
    owner_id: int,
    job_site: str | None,
    batch_teacher_id: int | None,
) -> bool:
    if role == Role.ADMIN:
        return True
    if owner_id == user_id:
        return True
    if role == Role.TEACHER:
        return batch_teacher_id == user_id
    if role == Role.STAFF:
        return job_site is None or job_site == user_site
    return False


def can_manage_job(*, role: str, user_site: str | None, job_site: str | None) -> bool:
    """Approve, reject, prioritise: staff of the job's site, or admin."""
    if role == Role.ADMIN:
        return True
    return role == Role.STAFF and (job_site is None or job_site == user_site)


def can_manage_device(*, role: str, user_site: str | None, device_site: str) -> bool:
    if role == Role.ADMIN:
        return True
    return role == Role.STAFF and device_site == user_site
