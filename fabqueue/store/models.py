"""Database models: the truth about users, sites, machines, materials, jobs and their history."""

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
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column, relationship

# Base and utcnow live in store.base; named here too, where the tables have always been found
from fabqueue.store.base import Base as Base
from fabqueue.store.base import utcnow as utcnow


class Site(Base):
    __tablename__ = "sites"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    colour_map: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # pickup shelf places in the order staff fill them, staff notification channels (Apprise
    # URLs) and quiet hours ("21:00-08:00"; None: the lab's default), from the devices file
    places: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    apprise_urls: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    quiet_hours: Mapped[str | None] = mapped_column(String(20), default=None)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    site_id: Mapped[str | None] = mapped_column(ForeignKey("sites.id"), default=None)
    email: Mapped[str | None] = mapped_column(String(200), default=None)
    locale: Mapped[str | None] = mapped_column(String(8), default=None)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    quota_g_month: Mapped[float | None] = mapped_column(Float, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # in every token and session cookie: raised to revoke them all (password, disable, logout)
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # privacy (issue 21): the last sign-in, for the inactive-account purge; and when the
    # account was erased (then only its id and role are left, as "deleted user")
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class Material(Base):
    __tablename__ = "materials"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # filament | sheet
    name: Mapped[str] = mapped_column(String(200), default="")
    density_g_cm3: Mapped[float | None] = mapped_column(Float, default=None)
    price_per_kg: Mapped[float | None] = mapped_column(Float, default=None)
    price_per_sheet: Mapped[float | None] = mapped_column(Float, default=None)
    sheet_w_mm: Mapped[float | None] = mapped_column(Float, default=None)
    sheet_h_mm: Mapped[float | None] = mapped_column(Float, default=None)
    thickness_mm: Mapped[float | None] = mapped_column(Float, default=None)
    laser_material: Mapped[str | None] = mapped_column(String(64), default=None)
    # print temperature ranges in °C (filaments; shown at upload, from the slicer profile)
    nozzle_c_min: Mapped[float | None] = mapped_column(Float, default=None)
    nozzle_c_max: Mapped[float | None] = mapped_column(Float, default=None)
    bed_c_min: Mapped[float | None] = mapped_column(Float, default=None)
    bed_c_max: Mapped[float | None] = mapped_column(Float, default=None)


class Device(Base):
    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"))
    name: Mapped[str] = mapped_column(String(200), default="")
    kind: Mapped[str] = mapped_column(String(20))  # printer | laser
    driver: Mapped[str] = mapped_column(String(20))  # octoprint | grbl | simulated
    size_mm: Mapped[list[Any]] = mapped_column(JSON)  # build volume [x,y,z] or bed [w,h]
    materials: Mapped[list[Any]] = mapped_column(JSON, default=list)
    profile: Mapped[str | None] = mapped_column(String(100), default=None)
    printer_class: Mapped[str | None] = mapped_column(String(100), default=None)
    # connection settings that are not secrets (url, api_key_env, port, baud, …)
    connection: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # laser power, origin…
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # live state, written by the device worker
    state: Mapped[str] = mapped_column(String(30), default="offline")
    state_reason: Mapped[str | None] = mapped_column(Text, default=None)
    current_job_id: Mapped[int | None] = mapped_column(Integer, default=None)
    progress: Mapped[float | None] = mapped_column(Float, default=None)
    time_left_s: Mapped[float | None] = mapped_column(Float, default=None)
    temperatures: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    loaded_material: Mapped[str | None] = mapped_column(String(64), default=None)
    # the spool staff loaded (store.models_spools); loaded_material follows it
    spool_id: Mapped[int | None] = mapped_column(Integer, default=None)
    # laser: the operator's checklist confirmation for one job, valid until it expires
    confirmation: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # the device worker that drives it (queue.lease): one at a time; every write it makes
    # carries the token it got when it took the lease, and is refused once that is stale
    lease_owner: Mapped[str | None] = mapped_column(String(120), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                              default=None)
    fencing_token: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Batch(Base):
    __tablename__ = "batches"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    teacher_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    site_id: Mapped[str | None] = mapped_column(ForeignKey("sites.id"), default=None)
    class_name: Mapped[str] = mapped_column(String(200))
    material_id: Mapped[str | None] = mapped_column(String(64), default=None)
    budget_g: Mapped[float | None] = mapped_column(Float, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # privacy (issue 21): the teacher confirmed the school's basis for handing in the
    # pupils' work; the class ends (default 30 June); its names were replaced for good
    basis_confirmed: Mapped[bool] = mapped_column(Boolean, default=False,
                                                  server_default=sa_false())
    ends_on: Mapped[date | None] = mapped_column(Date, default=None)
    names_purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                             default=None)
    jobs: Mapped[list[Job]] = relationship(back_populates="batch", order_by="Job.id")


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status_site", "status", "site_id"),
        Index("ix_jobs_owner", "owner_id"),
        # covers the staff filter of ``queries.visible_jobs``, so counting a list reads no
        # rows; owner first so that SQLite never takes it for a selective site lookup (see
        # migration 0002)
        Index("ix_jobs_owner_site", "owner_id", "site_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # print | laser
    status: Mapped[str] = mapped_column(String(20), index=True)
    status_reason: Mapped[str | None] = mapped_column(Text, default=None)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    site_id: Mapped[str | None] = mapped_column(ForeignKey("sites.id"), default=None)
    material_id: Mapped[str] = mapped_column(ForeignKey("materials.id"))
    quality: Mapped[str] = mapped_column(String(20), default="normal")
    copies: Mapped[int] = mapped_column(Integer, default=1)
    note: Mapped[str | None] = mapped_column(Text, default=None)
    file_sha256: Mapped[str] = mapped_column(String(64))
    file_name: Mapped[str] = mapped_column(String(300))  # shown to people; never used as a path
    file_format: Mapped[str] = mapped_column(String(10))  # stl | 3mf | obj | svg | gcode
    size_bytes: Mapped[int] = mapped_column(Integer)
    analysis: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    analysis_attempts: Mapped[int] = mapped_column(Integer, default=0)
    thumbnail_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    program_sha256: Mapped[str | None] = mapped_column(String(64), default=None)  # G-code
    slice_result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # laser: the operation chosen per paint ({"stroke:#000000": "cut"}); None: the convention
    colour_map: Mapped[dict[str, str] | None] = mapped_column(JSON, default=None)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    pinned_device_id: Mapped[str | None] = mapped_column(String(64), default=None)
    device_id: Mapped[str | None] = mapped_column(String(64), default=None)  # where it runs/ran
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"), default=None)
    student_name: Mapped[str | None] = mapped_column(String(200), default=None)
    # the pupil's pseudonym in its class batch (``10B-07``): all that others ever see
    pupil: Mapped[str | None] = mapped_column(String(20), default=None)
    # retention removed the upload, thumbnail and program (the row stays for statistics)
    files_purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                             default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    actual_seconds: Mapped[float | None] = mapped_column(Float, default=None)

    batch: Mapped[Batch | None] = relationship(back_populates="jobs")
    owner: Mapped[User] = relationship(foreign_keys=[owner_id])


class JobEvent(Base):
    """The audit log: every status change and staff action on a job."""

    __tablename__ = "job_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    action: Mapped[str] = mapped_column(String(40))
    from_status: Mapped[str | None] = mapped_column(String(20), default=None)
    to_status: Mapped[str | None] = mapped_column(String(20), default=None)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class Notification(Base):
    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), default=None)
    kind: Mapped[str] = mapped_column(String(40))
    text: Mapped[str] = mapped_column(Text)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    read: Mapped[bool] = mapped_column(Boolean, default=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# Each later domain keeps its tables in a module of its own (on store.base's Base); importing
# them here puts every table on Base.metadata for Alembic, whoever imports the models.
from fabqueue.store import (  # noqa: E402, F401
    models_pickup,
    models_privacy,
    models_spools,
    models_trainings,
)
