"""Pickup hand-overs and notification preferences (issue 18): tables of their own."""

from __future__ import annotations

from fabqueue.store.models import Base  # noqa: F401
