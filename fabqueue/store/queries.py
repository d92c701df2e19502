"""Queries shared by the web and the workers."""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Select, false, func, or_, select, update
from sqlalchemy.orm import Session

from fabqueue.config import Settings
from fabqueue.core.access import Role
from fabqueue.core.devices import DeviceState
from fabqueue.core.estimates import PrintParams
from fabqueue.store.models import Batch, Device, Job, Material, Site, User
from fabqueue.store.specs import laser_spec, material_spec, printer_spec

log = logging.getLogger(__name__)


def visible_jobs(user: User) -> Select[tuple[Job]]:
    """Residents: their own; teachers: their own and their batches'; staff: their site's."""
    q = select(Job)
    if user.role == Role.ADMIN:
        return q
    if user.role == Role.STAFF:
        return q.where(or_(Job.site_id == user.site_id, Job.site_id.is_(None),
                           Job.owner_id == user.id))
    if user.role == Role.TEACHER:
        batch_ids = select(Batch.id).where(Batch.teacher_id == user.id)
        return q.where(or_(Job.owner_id == user.id, Job.batch_id.in_(batch_ids)))
    return q.where(Job.owner_id == user.id)


def visible_batches(user: User) -> Select[tuple[Batch]]:
    q = select(Batch)
    if user.role == Role.ADMIN:
        return q
    if user.role == Role.STAFF:
        return q.where(or_(Batch.site_id == user.site_id, Batch.site_id.is_(None)))
    if user.role == Role.TEACHER:
        return q.where(Batch.teacher_id == user.id)
    return q.where(false())


def devices_for(session: Session, site_id: str | None, kind: str) -> list[Device]:
    q = select(Device).where(Device.kind == kind, Device.enabled.is_(True))
    if site_id:
        q = q.where(Device.site_id == site_id)
    return list(session.scalars(q.order_by(Device.id)))


def default_site(session: Session, material_id: str, kind: str) -> str | None:
    """The first site with a machine that takes the material (a resident may not know)."""
    for d in session.scalars(select(Device).where(Device.kind == kind).order_by(Device.site_id,
                                                                                 Device.id)):
        if material_id in (d.materials or []):
            return d.site_id
    site = session.scalars(select(Site).order_by(Site.id)).first()
    return site.id if site else None


@cache
def profile_set(folder: Path) -> Any:
    """The checked PrusaSlicer profiles (read once per process)."""
    from fabqueue.slicing.profiles import load_profiles

    return load_profiles(folder)


def print_params_for(settings: Settings, profile: str | None, material: str,
                     quality: str) -> PrintParams:
    if not profile:
        return PrintParams()
    try:
        return profile_set(settings.profiles_dir / "printers").print_params(profile, material,
                                                                            quality)
    except Exception as exc:  # a missing profile must not stop an estimate
        log.warning("no print parameters for %s/%s/%s: %s", profile, material, quality, exc)
        return PrintParams()


@cache
def _laser_library(folder: Path) -> dict[str, Any]:
    from fabqueue.laser.materials import load_library

    return load_library(folder)


def colour_map(config: dict[str, str] | None, choice: dict[str, str] | None = None) -> Any:
    """A site's colour convention ``{"#ff0000": "cut", …}`` as the laser code's ColourMap,
    with a job's own choice per paint (``{"stroke:#000000": "cut"}``) when it made one."""
    from fabqueue.laser.paths import ColourMap

    if not config:
        return ColourMap().with_choice(choice) if choice else None

    def pick(op: str) -> tuple[str, ...]:
        return tuple(c.lower() for c, o in config.items() if o == op)

    return ColourMap(cut_strokes=pick("cut"), score_strokes=pick("score"),
                     engrave_fills=pick("engrave")).with_choice(choice)


def laser_library(settings: Settings) -> dict[str, Any] | None:
    try:
        return _laser_library(settings.profiles_dir / "laser")
    except Exception as exc:
        log.warning("laser material library not loaded: %s", exc)
        return None


def analysis_inputs(session: Session, job: Job, settings: Settings) -> dict[str, Any]:
    """Everything the pure analysis needs, as plain data."""
    from fabqueue.analysis.guards import UploadLimits

    material_row = session.get(Material, job.material_id)
    material = material_spec(material_row) if material_row else None
    limits = UploadLimits(max_bytes=settings.max_upload_bytes,
                          max_triangles=settings.max_triangles)
    if job.kind == "laser":
        site = session.get(Site, job.site_id) if job.site_id else None
        return {
            "material": material,
            "lasers": [laser_spec(d) for d in devices_for(session, job.site_id, "laser")],
            "library": laser_library(settings),
            "colours": colour_map(site.colour_map if site else None, job.colour_map),
            "limits": limits,
        }
    printers = devices_for(session, job.site_id, "printer")
    target = next((d for d in printers if job.material_id in (d.materials or [])), None)
    params = print_params_for(settings, target.profile if target else None, job.material_id,
                              job.quality)
    return {
        "material": material,
        "printers": [printer_spec(d) for d in printers],
        "params": params,
        "copies": job.copies,
        "limits": limits,
    }


def get_user(session: Session, name: str) -> User | None:
    return session.scalars(select(User).where(User.name == name)).first()


def lock_site(session: Session, site_id: str) -> None:
    """Serialise the decisions taken per site (the heating limit) until this transaction
    ends. A no-op UPDATE of the site's row: on PostgreSQL it takes that row's lock, so the
    other workers of the site wait at this line (those of other sites don't); on SQLite it
    takes the database's write lock (its only lock), which is held briefly: the transaction
    holds no machine I/O. The same statement on both, and nothing that outlives a crash
    (unlike a Redis lock)."""
    session.execute(update(Site).where(Site.id == site_id).values(name=Site.name)
                    .execution_options(synchronize_session=False))


def heating_at(session: Session, site_id: str, *, but: str | None = None) -> int:
    """Machines of the site heating now (the other machines, ``but`` one)."""
    q = select(func.count()).select_from(Device).where(Device.site_id == site_id,
                                                       Device.state == DeviceState.HEATING)
    if but:
        q = q.where(Device.id != but)
    return int(session.scalar(q) or 0)
