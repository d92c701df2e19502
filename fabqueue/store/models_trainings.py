"""Trainings, grants, maintenance tasks and records (issue 17): tables of their own."""

from __future__ import annotations

from fabqueue.store.models import Base  # noqa: F401
