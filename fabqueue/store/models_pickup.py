"""Pickup hand-overs and notification preferences (issue 18): tables of their own."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fabqueue.store.base import Base, utcnow


class Pickup(Base):
    """A finished part on its way from the machine to its owner's hands (one per job)."""

    __tablename__ = "pickups"
    __table_args__ = (Index("ix_pickups_site_state", "site_id", "state"),)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    site_id: Mapped[str | None] = mapped_column(String(64), default=None)
    state: Mapped[str] = mapped_column(String(20))  # core.pickup.PickupState
    place: Mapped[str | None] = mapped_column(String(40), default=None)
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # what the label's QR code carries: random, so a URL can't be guessed from a job number
    token: Mapped[str] = mapped_column(String(64), unique=True)
    reminders_sent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    collected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    collected_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    uncollected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                            default=None)
    disposed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    disposed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)


class NotificationPrefs(Base):
    """A user's own channels (Apprise URLs) and the events they want; no row: the defaults."""

    __tablename__ = "notification_prefs"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    apprise_urls: Mapped[list[Any]] = mapped_column(JSON, default=list)
    events: Mapped[list[Any]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Delivery(Base):
    """One message to one channel: written with the change that caused it (so none is lost
    and none blocks the change), sent later by the periodic sender, retried with back-off."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (Index("ix_deliveries_state_due", "state", "not_before"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event: Mapped[str] = mapped_column(String(40))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    site_id: Mapped[str | None] = mapped_column(String(64), default=None)
    job_id: Mapped[int | None] = mapped_column(Integer, default=None)
    # an Apprise URL, or "email:" for the user's own address over FabQueue's SMTP
    channel: Mapped[str] = mapped_column(Text)
    locale: Mapped[str] = mapped_column(String(8))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(12), default="pending")  # pending|sent|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    not_before: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    # the same message is written once (a doubled periodic run or a retried request)
    dedupe: Mapped[str | None] = mapped_column(String(200), unique=True, default=None)
