"""Spools in the database: the devices file's ``[[spool]]`` tables, loading one on a printer,
the gate before a start, and the ledger that takes an ended job's grams off once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from fabqueue.core import spools as rules
from fabqueue.store.models import Device, Job, Site, utcnow
from fabqueue.store.models_spools import FilamentRisk, Spool, SpoolUsage


class SpoolIn(BaseModel):
    """A ``[[spool]]`` table of the devices file, or the body of ``POST /api/spools``."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    site: str = Field(..., min_length=1, max_length=64)
    material: str = Field(..., min_length=1, max_length=64)
    colour: str = Field("", max_length=64)
    brand: str = Field("", max_length=100)
    lot: str = Field("", max_length=100)
    net_g: float = Field(1000.0, gt=0, le=100_000)
    empty_g: float = Field(0.0, ge=0, le=100_000)
    remaining_g: float | None = Field(None, ge=0, le=100_000)
    place: str = Field("", max_length=100)


class SpoolPatch(BaseModel):
    """``PATCH /api/spools/{id}``: only what is given changes."""

    model_config = ConfigDict(extra="forbid")
    material: str | None = Field(None, min_length=1, max_length=64)
    colour: str | None = Field(None, max_length=64)
    brand: str | None = Field(None, max_length=100)
    lot: str | None = Field(None, max_length=100)
    net_g: float | None = Field(None, gt=0, le=100_000)
    empty_g: float | None = Field(None, ge=0, le=100_000)
    remaining_g: float | None = Field(None, ge=0, le=100_000)
    place: str | None = Field(None, max_length=100)
    archived: bool | None = None


def upsert_spool(session: Session, sp: SpoolIn) -> tuple[str, Spool]:
    """Add a spool, or update the one the devices file named by the same ``id``. A spool
    re-imported keeps what the ledger took off unless the file gives ``remaining_g``."""
    if session.get(Site, sp.site) is None:
        raise ValueError(f"spool {sp.id or ''} names site {sp.site!r}, which does not exist")
    row = session.scalar(select(Spool).where(Spool.code == sp.id)) if sp.id else None
    new = row is None
    if row is None:
        row = Spool(code=sp.id, site_id=sp.site, material=sp.material,
                    remaining_g=sp.net_g if sp.remaining_g is None else sp.remaining_g)
        session.add(row)
    elif sp.remaining_g is not None:
        row.remaining_g = sp.remaining_g
    row.site_id, row.material, row.colour = sp.site, sp.material, sp.colour
    row.brand, row.lot, row.place = sp.brand, sp.lot, sp.place
    row.net_g, row.empty_g = sp.net_g, sp.empty_g
    row.updated_at = utcnow()
    return ("added" if new else "updated"), row


def patch_spool(spool: Spool, patch: SpoolPatch) -> None:
    for key, value in patch.model_dump(exclude_unset=True).items():
        if value is not None:
            setattr(spool, key, value)
    spool.updated_at = utcnow()


def weigh(spool: Spool, gross_g: float) -> float:
    spool.remaining_g = rules.remaining_from_weight(gross_g, spool.empty_g, spool.net_g)
    spool.updated_at = utcnow()
    return spool.remaining_g


def load(session: Session, device: Device, spool: Spool | None) -> None:
    """Put ``spool`` on the printer (None: take it off). The printer's loaded material
    follows the spool, so the scheduler only offers it jobs of that material; a spool
    loaded on another printer leaves that one (it is in one place at a time). Its shelf
    ``place`` stays: that is where it goes back."""
    if spool is not None:
        for other in session.scalars(select(Device).where(Device.spool_id == spool.id,
                                                          Device.id != device.id)):
            other.spool_id = None
        device.loaded_material = spool.material
    device.spool_id = spool.id if spool is not None else None


def job_grams(job: Job) -> float | None:
    grams = (job.slice_result or {}).get("filament_g")
    return float(grams) if isinstance(grams, int | float) and grams > 0 else None


def start_blocked(session: Session, device: Device, job: Job) -> Spool | None:
    """The spool that is too light to start ``job`` on ``device`` now, or None when the job
    may start there (no spool loaded, unknown grams, enough left, or staff accepted the
    risk for this job). The check the device worker's claim calls (and the start gate)."""
    if device.spool_id is None or device.kind != "printer":
        return None
    spool = session.get(Spool, device.spool_id)
    if spool is None or rules.enough(spool.remaining_g, job_grams(job)):
        return None
    if session.get(FilamentRisk, job.id) is not None:
        return None
    return spool


def accept_risk(session: Session, job: Job, user_id: int | None) -> bool:
    """Staff let this job start on a light spool; False when they had already."""
    if session.get(FilamentRisk, job.id) is not None:
        return False
    session.add(FilamentRisk(job_id=job.id, accepted_by=user_id))
    return True


def _insert_once(session: Session, values: dict[str, Any]) -> bool:
    """Insert the job's ledger row unless one exists: ``ON CONFLICT DO NOTHING``, so two
    processes that see the same end at once write one row between them."""
    dialect = session.get_bind().dialect.name
    ins = (pg_insert if dialect == "postgresql" else sqlite_insert)(SpoolUsage)
    # RETURNING, not rowcount: psycopg's rowcount of a skipped insert is not reliably 0
    res = session.execute(ins.values(**values).on_conflict_do_nothing(
        index_elements=["job_id"]).returning(SpoolUsage.job_id))
    return res.first() is not None


def record_usage(session: Session, job: Job, device: Device, ending: str,
                 progress: float | None, now: datetime | None = None) -> float | None:
    """Take an ended job's grams off the spool loaded on its printer, once. Returns the
    grams taken, or None when there is nothing to take (no spool, taken already)."""
    if device.spool_id is None or device.kind != "printer":
        return None
    spool = session.get(Spool, device.spool_id, with_for_update=True)
    if spool is None:
        return None
    grams = rules.used_grams(ending, job_grams(job), progress)
    now = now or utcnow()
    if not _insert_once(session, {"job_id": job.id, "spool_id": spool.id, "grams": grams,
                                  "ending": str(ending), "at": now, "send_attempts": 0}):
        return None
    spool.remaining_g = max(0.0, round(spool.remaining_g - grams, 1))
    spool.updated_at = now
    session.flush()
    return grams


def site_stock(session: Session, site: str, material: str) -> float:
    """Grams of ``material`` on the site's spools, together."""
    return float(session.scalar(select(func.coalesce(func.sum(Spool.remaining_g), 0.0)).where(
        Spool.site_id == site, Spool.material == material, Spool.archived.is_(False))) or 0.0)
