"""``/api/spools``: the spools on a site's shelves and printers, weighing them, loading one on
a printer (``POST /api/devices/{id}/spool``) and letting a job start on a light spool
(``POST /api/jobs/{id}/accept-filament-risk``). Staff of the site (admins anywhere) change
them; everyone signed in may see what is in stock."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabqueue import events
from fabqueue.core.access import Role, can_manage_device, is_staff
from fabqueue.core.jobs import JobStatus
from fabqueue.queue.spool_gate import clear_filament_low
from fabqueue.store.jobs import queue_event, record
from fabqueue.store.models import Device, Job, User
from fabqueue.store.models_spools import Spool, SpoolUsage
from fabqueue.store.spools import (
    SpoolIn,
    SpoolPatch,
    accept_risk,
    load,
    patch_spool,
    upsert_spool,
    weigh,
)
from fabqueue.web.api import trainings as gate
from fabqueue.web.deps import ApiError, current_user, get_db, staff_user
from fabqueue.web.params import MAX_INT

router = APIRouter(tags=["spools"])


class WeighIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gross_g: float = Field(..., ge=0, le=100_000)


class LoadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    spool: int | None = Field(..., ge=1, le=MAX_INT, description="null takes the spool off")
    job: int | None = Field(None, ge=1, le=MAX_INT, description=(
        "a trained resident or teacher loads material for their own job on this machine"))


def spool_out(sp: Spool, loaded_on: str | None = None) -> dict[str, Any]:
    return {"id": sp.id, "code": sp.code, "site": sp.site_id, "material": sp.material,
            "colour": sp.colour, "brand": sp.brand, "lot": sp.lot, "net_g": sp.net_g,
            "empty_g": sp.empty_g, "remaining_g": sp.remaining_g, "place": sp.place,
            "archived": sp.archived, "spoolman_id": sp.spoolman_id, "loaded_on": loaded_on,
            "updated_at": sp.updated_at}


def _may_manage(user: User, site: str) -> None:
    if not can_manage_device(role=user.role, user_site=user.site_id, device_site=site):
        raise ApiError(403, "Only lab staff of this site can change its spools.")


def _spool(db: Session, spool_id: int) -> Spool:
    sp = db.get(Spool, spool_id) if 0 < spool_id <= MAX_INT else None
    if sp is None:
        raise ApiError(404, "There is no spool {id}.", id=spool_id)
    return sp


def _loaded_on(db: Session) -> dict[int, str]:
    return {sid: did for did, sid in db.execute(
        select(Device.id, Device.spool_id).where(Device.spool_id.is_not(None)))}


@router.get("/api/spools")
def _handle_list(site: str | None = None, material: str | None = None,
                 archived: bool = False, user: User = Depends(current_user),
                 db: Session = Depends(get_db, scope="function")) -> list[dict[str, Any]]:
    q = select(Spool).order_by(Spool.site_id, Spool.material, Spool.id)
    if site:
        q = q.where(Spool.site_id == site)
    if material:
        q = q.where(Spool.material == material)
    if not archived:
        q = q.where(Spool.archived.is_(False))
    on = _loaded_on(db)
    return [spool_out(sp, on.get(sp.id)) for sp in db.scalars(q)]


def _not_in_spoolman(request: Request, sp: Spool | None = None) -> None:
    """With Spoolman, its spools are changed there (the mirror would undo a change here)."""
    if request.app.state.settings.spoolman_url and (sp is None or sp.spoolman_id is not None):
        raise ApiError(409, "Spools are kept in Spoolman: change them there.")


@router.post("/api/spools", status_code=201)
def _handle_add(body: SpoolIn, request: Request, user: User = Depends(staff_user),
                db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    _may_manage(user, body.site)
    _not_in_spoolman(request)
    try:
        _, sp = upsert_spool(db, body)
    except ValueError as exc:
        raise ApiError(422, str(exc)) from None
    db.flush()
    return spool_out(sp)


@router.get("/api/spools/{spool_id}")
def _handle_get(spool_id: int, user: User = Depends(current_user),
                db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    sp = _spool(db, spool_id)
    out = spool_out(sp, _loaded_on(db).get(sp.id))
    out["usage"] = [{"job": u.job_id, "grams": u.grams, "ending": u.ending, "at": u.at}
                    for u in db.scalars(select(SpoolUsage).where(SpoolUsage.spool_id == sp.id)
                                        .order_by(SpoolUsage.at.desc()).limit(50))]
    return out


@router.patch("/api/spools/{spool_id}")
def _handle_patch(spool_id: int, body: SpoolPatch, request: Request,
                  user: User = Depends(staff_user),
                  db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    sp = _spool(db, spool_id)
    _may_manage(user, sp.site_id)
    _not_in_spoolman(request, sp)
    patch_spool(sp, body)
    if body.remaining_g is not None:
        clear_filament_low(db, sp.site_id)
    db.flush()
    return spool_out(sp, _loaded_on(db).get(sp.id))


@router.post("/api/spools/{spool_id}/weigh")
def _handle_weigh(spool_id: int, body: WeighIn, user: User = Depends(staff_user),
                  db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    sp = _spool(db, spool_id)
    _may_manage(user, sp.site_id)
    weigh(sp, body.gross_g)
    if sp.spoolman_id is not None:  # sent to Spoolman from the queue side (spoolman_sync)
        sp.spoolman_measure_g = body.gross_g
    clear_filament_low(db, sp.site_id)
    db.flush()
    return spool_out(sp, _loaded_on(db).get(sp.id))


@router.post("/api/devices/{device_id}/spool")
def _handle_load(device_id: str, body: LoadIn, request: Request,
                 user: User = Depends(current_user),
                 db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    if not is_staff(user.role) and body.job is None:
        raise ApiError(403, "Only lab staff can do this.")
    d = db.get(Device, device_id)
    if d is None:
        raise ApiError(404, "There is no machine {id}.", id=device_id)
    if is_staff(user.role):
        _may_manage(user, d.site_id)
    else:  # issue 17: a trained owner loads material for their own job, like staff do
        job = db.get(Job, body.job)
        if job is None or job.site_id != d.site_id:
            raise ApiError(404, "There is no job {id}.", id=body.job)
        gate.enforce(request, db, d, job, user, check_machine=False)
    if d.kind != "printer":
        raise ApiError(422, "Only a printer takes a spool.")
    sp = _spool(db, body.spool) if body.spool is not None else None
    if sp is not None:
        if sp.site_id != d.site_id:
            raise ApiError(422, "Spool {spool} is at another site.", spool=sp.id)
        if sp.archived:
            raise ApiError(422, "Spool {spool} is archived.", spool=sp.id)
        if d.materials and sp.material not in d.materials:
            raise ApiError(422, "Machine {id} does not print {material}.", id=d.id,
                           material=sp.material)
    load(db, d, sp)
    clear_filament_low(db, d.site_id)
    queue_event(db, events.DEVICE_STATE, {"device": d.id, "site": d.site_id, "state": d.state,
                                          "spool": d.spool_id,
                                          "loaded_material": d.loaded_material})
    db.flush()
    return {"device": d.id, "spool": spool_out(sp, d.id) if sp is not None else None,
            "loaded_material": d.loaded_material}


@router.post("/api/jobs/{job_id}/accept-filament-risk")
def _handle_accept(job_id: int, user: User = Depends(staff_user),
                   db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    job = db.get(Job, job_id) if 0 < job_id <= MAX_INT else None
    if job is None:
        raise ApiError(404, "There is no job {id}.", id=job_id)
    if user.role != Role.ADMIN and job.site_id != user.site_id:
        raise ApiError(403, "Only lab staff of this site can do this.")
    if job.status not in (JobStatus.READY, JobStatus.APPROVED, JobStatus.SLICING,
                          JobStatus.AWAITING_APPROVAL, JobStatus.INTERRUPTED):
        raise ApiError(409, "This job does not wait to start.")
    if accept_risk(db, job, user.id):
        record(db, job, "filament_risk_accepted", actor_id=user.id)
        if job.status == JobStatus.READY:
            job.status_reason = None
    return {"job": job.id, "filament_risk_accepted": True}
