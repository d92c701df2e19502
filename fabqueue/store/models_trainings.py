"""Trainings, grants, maintenance tasks and records (issue 17): tables of their own.

Nothing here is deleted in normal use: a grant is revoked (who, when), a machine returned
to service closes its outage row, a maintenance record stays as the machine's history.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from fabqueue.store.base import Base, utcnow


class TrainingDef(Base):
    """A training as the devices file defines it (re-imported: updated, never dropped)."""

    __tablename__ = "trainings"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # {"lt": …, "en": …}
    devices: Mapped[list[Any]] = mapped_column(JSON, default=list)
    kinds: Mapped[list[Any]] = mapped_column(JSON, default=list)
    valid_days: Mapped[int] = mapped_column(Integer, default=0)
    renew_on_use: Mapped[bool] = mapped_column(Boolean, default=False)
    staff: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TrainingGrant(Base):
    """One grant of a training to a person; a new grant is a new row (the history stays)."""

    __tablename__ = "training_grants"
    __table_args__ = (Index("ix_training_grants_user_training", "user_id", "training_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    training_id: Mapped[str] = mapped_column(ForeignKey("trainings.id"))
    granted_on: Mapped[date] = mapped_column(Date)  # the lab's date the training took place
    granted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_on: Mapped[date | None] = mapped_column(Date, default=None)
    revoked_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    # notices sent to the holder ("soon:<end>", "today:<end>"), so a doubled run sends none
    notices: Mapped[list[Any]] = mapped_column(JSON, default=list)


class MaintenanceTask(Base):
    """A service task per machine (the devices file names it per device or per kind)."""

    __tablename__ = "maintenance_tasks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task: Mapped[str] = mapped_column(String(64))  # the file's id: "lens"
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    name: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    every_hours: Mapped[float | None] = mapped_column(Float, default=None)
    every_jobs: Mapped[int | None] = mapped_column(Integer, default=None)
    every_days: Mapped[float | None] = mapped_column(Float, default=None)
    every_filament_m: Mapped[float | None] = mapped_column(Float, default=None)
    # counting starts here (the import, or the last time it was done)
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # the last state staff were told about (due_soon), so a doubled run tells nobody twice
    notified: Mapped[str | None] = mapped_column(String(20), default=None)
    __table_args__ = (Index("ix_maintenance_tasks_device_task", "device_id", "task",
                            unique=True),)


class MaintenanceRecord(Base):
    __tablename__ = "maintenance_records"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("maintenance_tasks.id", ondelete="CASCADE"),
                                         index=True)
    done_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    done_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    note: Mapped[str] = mapped_column(Text, default="")


class DeviceOutage(Base):
    """A machine taken out of order by staff; ``returned_at`` set when it is back."""

    __tablename__ = "device_outages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"),
                                           index=True)
    reason: Mapped[str] = mapped_column(Text)
    by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    returned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    returned_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
