"""Spools and the per-job usage ledger (issue 18): tables of their own."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from fabqueue.store.base import Base, utcnow


class Spool(Base):
    """A spool of filament at a site. ``remaining_g`` is what is left (set by weighing,
    lowered by the ledger); with Spoolman configured the row mirrors Spoolman's spool
    (``spoolman_id``) and Spoolman holds the truth about its weight."""

    __tablename__ = "spools"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # the devices file's ``id`` of a ``[[spool]]`` table: re-importing updates, never doubles
    code: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    material: Mapped[str] = mapped_column(String(64))
    colour: Mapped[str] = mapped_column(String(64), default="")
    brand: Mapped[str] = mapped_column(String(100), default="")
    lot: Mapped[str] = mapped_column(String(100), default="")
    net_g: Mapped[float] = mapped_column(Float, default=1000.0)
    empty_g: Mapped[float] = mapped_column(Float, default=0.0)
    remaining_g: Mapped[float] = mapped_column(Float, default=0.0)
    place: Mapped[str] = mapped_column(String(100), default="")
    spoolman_id: Mapped[int | None] = mapped_column(Integer, unique=True, default=None)
    # a weighing staff made that Spoolman has not been told yet (queue.spoolman_sync sends it)
    spoolman_measure_g: Mapped[float | None] = mapped_column(Float, default=None)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SpoolUsage(Base):
    """The ledger: what one job took off its spool. The job is the primary key, so no
    restart, retry or second worker can take a job's grams off twice; the same row is
    Spoolman's idempotency key (``sent_at`` set once Spoolman took the use)."""

    __tablename__ = "spool_usage"
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    spool_id: Mapped[int] = mapped_column(ForeignKey("spools.id"), index=True)
    grams: Mapped[float] = mapped_column(Float)
    ending: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    send_attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Spoolman's used_weight just before the use was sent: a send whose answer was lost is
    # seen to have landed (used_weight grew by the grams) and is not sent a second time
    spoolman_used_before: Mapped[float | None] = mapped_column(Float, default=None)


class FilamentRisk(Base):
    """Staff accepted that a job may start on a spool that looks too light for it."""

    __tablename__ = "filament_risks"
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    accepted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
