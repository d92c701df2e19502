"""Where each role lands after signing in: the page their day starts on."""

from __future__ import annotations

from fabqueue.core.access import Role

START_PAGES = {
    Role.STAFF: "/staff/machines",  # the machines; the approval inbox is one click away
    Role.ADMIN: "/staff/machines",  # the machines; the admin page is in the navigation
    Role.TEACHER: "/classes",
}


def start_page(role: str) -> str:
    return START_PAGES.get(role, "/")  # type: ignore[call-overload]
