"""Retention and erasure records (issue 21): tables of their own.

Neither table holds a name: a purge is recorded with its counts only, a notice by the
account's id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer
from sqlalchemy.orm import Mapped, mapped_column

from fabqueue.store.base import Base, utcnow


class PurgeRun(Base):
    """One run of the retention purge (daily in ``serve``, or ``fabqueue purge``)."""

    __tablename__ = "purge_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # per kind, no names


class AccountNotice(Base):
    """An inactive account was told it will be erased (once per stretch of inactivity)."""

    __tablename__ = "account_notices"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    told_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
