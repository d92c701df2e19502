"""Spools and the per-job usage ledger (issue 18): tables of their own."""

from __future__ import annotations

from fabqueue.store.models import Base  # noqa: F401
