"""Retention and erasure records (issue 21): tables of their own."""

from __future__ import annotations

from fabqueue.store.models import Base  # noqa: F401
