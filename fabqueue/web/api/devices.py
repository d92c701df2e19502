"""``/api/devices``: machines, their live state, and the controls staff use at them.

The web never talks to a machine: it records intent (a control command or a database fact
such as "the bed is clear") and the device worker carries it out.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabqueue import events
from fabqueue.core.access import Role, can_manage_device, is_staff
from fabqueue.core.devices import RUNNING, DeviceState
from fabqueue.core.jobs import JobStatus
from fabqueue.i18n import gettext
from fabqueue.queue import control
from fabqueue.store.inventory import DeviceIn, upsert_device
from fabqueue.store.jobs import queue_event, record
from fabqueue.store.models import Device, Job, User
from fabqueue.web.api import trainings as gate
from fabqueue.web.deps import ApiError, admin_user, current_user, get_db, request_locale
from fabqueue.web.params import MAX_INT
from fabqueue.web.present import reason_fields

router = APIRouter(prefix="/api/devices", tags=["devices"])

CHECKLIST = ("material", "focus", "air", "lid")


def device_out(d: Device, *, staff: bool = False, admin: bool = False,
               locale: str = "en") -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": d.id, "site": d.site_id, "name": d.name, "kind": d.kind, "driver": d.driver,
        "simulated": d.driver == "simulated", "state": d.state,
        **reason_fields("state_reason", d.state_reason, locale),
        "job": d.current_job_id, "progress": d.progress, "time_left_s": d.time_left_s,
        "temperatures": d.temperatures or {}, "materials": d.materials or [],
        "loaded_material": d.loaded_material, "spool": d.spool_id, "profile": d.profile,
        "printer_class": d.printer_class, "enabled": d.enabled, "seen_at": d.seen_at,
    }
    if d.kind == "printer":
        out["build_volume_mm"] = d.size_mm
    else:
        out["bed_mm"] = d.size_mm
    if admin:  # where a machine is reached is the admins' business only
        out["connection"] = d.connection  # names of secrets only, never their values
    if staff or admin:
        out["settings"] = d.settings
        out["confirmation"] = d.confirmation
    return out


def _load(db: Session, device_id: str) -> Device:
    d = db.get(Device, device_id)
    if d is None:
        raise ApiError(404, "There is no machine {id}.", id=device_id)
    return d


def _site_staff(user: User, d: Device) -> bool:
    """Staff of the machine's own site (and admins) read its settings and the operator's
    confirmation; other sites' staff see the board's public fields only."""
    return can_manage_device(role=user.role, user_site=user.site_id, device_site=d.site_id)


def _managed(db: Session, user: User, device_id: str) -> Device:
    d = _load(db, device_id)
    if not can_manage_device(role=user.role, user_site=user.site_id, device_site=d.site_id):
        raise ApiError(403, "Only lab staff of this site can control this machine.")
    return d


@router.get("")
def _handle_list(request: Request, site: str | None = None, kind: str | None = None,
                 user: User = Depends(current_user),
                 db: Session = Depends(get_db, scope="function")) -> list[dict[str, Any]]:
    q = select(Device).order_by(Device.site_id, Device.id)
    if site:
        q = q.where(Device.site_id == site)
    if kind:
        q = q.where(Device.kind == kind)
    locale = request_locale(request, user)
    return [device_out(d, staff=_site_staff(user, d), admin=user.role == Role.ADMIN,
                       locale=locale) for d in db.scalars(q)]


@router.get("/{device_id}")
def _handle_get(device_id: str, request: Request, user: User = Depends(current_user),
                db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    from fabqueue.store.forecast import device_ratio

    d = _load(db, device_id)
    out = device_out(d, staff=_site_staff(user, d), admin=user.role == Role.ADMIN,
                     locale=request_locale(request, user))
    # learned from this machine's recent prints: actual ÷ estimated time (None: no history)
    out["estimate_ratio"] = device_ratio(db, device_id)
    return out


@router.put("/{device_id}")
def _handle_put(device_id: str, body: DeviceIn, user: User = Depends(admin_user),
                db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    body.id = device_id
    try:
        upsert_device(db, body)
    except ValueError as exc:
        raise ApiError(422, str(exc)) from None
    db.flush()
    return device_out(_load(db, device_id), staff=True, admin=True)


@router.delete("/{device_id}", status_code=204)
def _handle_delete(device_id: str, user: User = Depends(admin_user),
                   db: Session = Depends(get_db, scope="function")) -> None:
    d = _load(db, device_id)
    if d.current_job_id:
        raise ApiError(409, "The machine {id} is running a job; stop it first.", id=d.id)
    db.delete(d)


def _publish_state(db: Session, d: Device) -> None:
    queue_event(db, events.DEVICE_STATE, {"device": d.id, "site": d.site_id, "state": d.state,
                                          "job": d.current_job_id})


class BedClearIn(BaseModel):
    #: the print the page showed on the bed; optional to FastAPI only so that who may not
    #: clear it hears 403 first (checked in the handler)
    job: int | None = Field(default=None, ge=0, le=MAX_INT)


@router.post("/{device_id}/bed-cleared")
def _handle_bed_cleared(device_id: str, request: Request, body: BedClearIn | None = None,
                        user: User = Depends(current_user),
                        db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    d = _load(db, device_id)
    if d.kind != "printer":
        raise ApiError(409, "Only printers have a bed to clear.")
    # staff, or a trained owner of the finished print (the start gate; a due machine still
    # gets its bed cleared: the worker asks the gate again before it takes the next job)
    finished = db.get(Job, d.current_job_id) if d.current_job_id else None
    gate.enforce(request, db, d, finished, user, check_machine=False)
    if d.state != DeviceState.NEEDS_BED_CLEAR:
        raise ApiError(409, "The printer {id} is {state}: there is no finished print to "
                            "clear.", id=d.id, state=d.state)
    _shown_print(d, body)
    if finished is not None:  # who confirmed it, in the job's history
        record(db, finished, "bed_cleared", actor_id=user.id, data={"device": d.id})
    gate.used(request, db, user, d)
    from fabqueue.queue.pickup import part_off_the_bed

    part_off_the_bed(db, d.current_job_id, actor_id=user.id)  # the part waits for pickup
    d.state = DeviceState.IDLE.value
    d.state_reason = None
    d.current_job_id = None
    d.progress = None
    d.time_left_s = None
    _publish_state(db, d)
    db.commit()
    # wake the device worker now rather than at its next poll: the next print starts at once
    control.send(request.app.state.ctx.redis, d.id, "bed_cleared", by=user.id)
    return device_out(d, staff=is_staff(user.role))


def _shown_print(d: Device, body: BedClearIn | None) -> None:
    """The click clears the print the page showed: a stale second click, after the next
    print started (and finished) on this bed, must not clear that one's bed too."""
    if body is None or body.job is None:
        raise ApiError(422, "Say which print's bed was cleared (the job shown on the "
                            "board).")
    if body.job != d.current_job_id:
        raise ApiError(409, "The printer {id} now holds job {current}, not job {shown}: "
                            "reload the board and check the bed again.", id=d.id,
                       current=d.current_job_id, shown=body.job)


def _frame_job_of(db: Session, d: Device, job_id: int) -> None:
    """A frame traces a job this laser could run now: never another machine's or kind's."""
    job = db.get(Job, job_id)
    if job is None or job.kind != "laser":
        raise ApiError(404, "There is no laser job {id}.", id=job_id)
    if job.status != JobStatus.READY or job.site_id != d.site_id or (
            job.pinned_device_id and job.pinned_device_id != d.id) or (
            job.material_id not in (d.materials or [])):
        raise ApiError(409, "Job {id} is not waiting for the laser {device}.", id=job.id,
                       device=d.id)


class StartIn(BaseModel):
    job: int = Field(ge=0, le=MAX_INT)
    checklist: dict[str, bool] = Field(default_factory=dict)


@router.post("/{device_id}/start")
def _handle_start(device_id: str, body: StartIn, request: Request,
                  user: User = Depends(current_user),
                  db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    """Staff, or a trained owner of the job, at the laser confirm the checklist; the laser
    starts only on this (after the start gate: the machine, then the operator)."""
    d = _load(db, device_id)
    gate.enforce(request, db, d, db.get(Job, body.job), user)
    if d.kind != "laser":
        raise ApiError(409, "Printers start by themselves once their bed is cleared.")
    missing = [item for item in CHECKLIST if body.checklist.get(item) is not True]
    if missing:
        from fabqueue.web.pages.board import CHECKLIST_ITEMS

        # the items in the reader's words, never the API's keys
        locale = request_locale(request, user)
        raise ApiError(409, "Confirm every item of the checklist first: {missing}.",
                       missing="; ".join(gettext(locale, CHECKLIST_ITEMS[k]) for k in missing))
    job = db.get(Job, body.job)
    if job is None or job.kind != "laser":
        raise ApiError(404, "There is no laser job {id}.", id=body.job)
    if job.status != JobStatus.READY:
        raise ApiError(409, "Job {id} can't start: it is {status}.", id=job.id,
                       status=job.status)
    if job.pinned_device_id and job.pinned_device_id != d.id:
        raise ApiError(409, "Job {id} is meant for the laser {device}.", id=job.id,
                       device=job.pinned_device_id)
    if job.material_id not in (d.materials or []):
        raise ApiError(409, "The laser {device} does not take {material}.", device=d.id,
                       material=job.material_id)
    if d.state not in (DeviceState.IDLE, DeviceState.AWAITING_OPERATOR):
        raise ApiError(409, "The laser {id} is {state}; it can't start a job now.", id=d.id,
                       state=d.state)
    now = time.time()
    ttl = request.app.state.settings.operator_confirmation_ttl_s
    d.confirmation = {"job": job.id, "by": user.id, "at": now, "expires": now + ttl,
                      "checklist": {k: True for k in CHECKLIST}}
    record(db, job, "operator_confirmed", actor_id=user.id,
           data={"device": d.id, "expires_in_s": ttl})
    gate.used(request, db, user, d)
    db.commit()
    control.send(request.app.state.ctx.redis, d.id, "start", job=job.id, by=user.id,
                 expires=now + ttl)
    return device_out(d, staff=is_staff(user.role))


def _command(request: Request, db: Session, user: User, device_id: str, command: str,
             running_only: bool = True) -> dict[str, Any]:
    d = _load(db, device_id)
    if command == "reset" or not d.current_job_id:
        d = _managed(db, user, device_id)  # an alarm is cleared by staff, who checked
    else:  # whoever may operate the job may stop, pause or resume it (the start gate)
        gate.enforce(request, db, d, db.get(Job, d.current_job_id), user, check_machine=False)
    if running_only and (d.state not in RUNNING or not d.current_job_id):
        raise ApiError(409, "The machine {id} is not running a job.", id=d.id)
    control.send(request.app.state.ctx.redis, d.id, command, job=d.current_job_id,
                 by=user.id)
    if d.current_job_id:
        job = db.get(Job, d.current_job_id)
        if job is not None:
            record(db, job, f"{command}_requested", actor_id=user.id, data={"device": d.id})
    return device_out(d, staff=is_staff(user.role))


@router.post("/{device_id}/stop")
def _handle_stop(device_id: str, request: Request, user: User = Depends(current_user),
                 db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    """The stop button: a laser is soft-reset at once; a print is cancelled."""
    return _command(request, db, user, device_id, "stop", running_only=False)


@router.post("/{device_id}/pause")
def _handle_pause(device_id: str, request: Request, user: User = Depends(current_user),
                  db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    return _command(request, db, user, device_id, "pause")


@router.post("/{device_id}/resume")
def _handle_resume(device_id: str, request: Request, user: User = Depends(current_user),
                   db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    return _command(request, db, user, device_id, "resume")


@router.post("/{device_id}/cancel")
def _handle_cancel(device_id: str, request: Request, user: User = Depends(current_user),
                   db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    return _command(request, db, user, device_id, "cancel")


@router.post("/{device_id}/frame")
def _handle_frame(device_id: str, body: StartIn, request: Request,
                  user: User = Depends(current_user),
                  db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    """Trace the job's outline with the laser off, so the operator can check the sheet."""
    d = _managed(db, user, device_id)
    if d.kind != "laser":
        raise ApiError(409, "Only a laser can trace a frame.")
    _frame_job_of(db, d, body.job)
    if d.state not in (DeviceState.IDLE, DeviceState.AWAITING_OPERATOR):
        raise ApiError(409, "The laser {id} can trace a frame only while it waits for a job.",
                       id=d.id)
    control.send(request.app.state.ctx.redis, d.id, "frame", job=body.job, by=user.id)
    return device_out(d, staff=True)


@router.post("/{device_id}/reset")
def _handle_reset(device_id: str, request: Request, user: User = Depends(current_user),
                  db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    """Clear an alarm or error after staff checked the machine."""
    return _command(request, db, user, device_id, "reset", running_only=False)




@router.post("/{device_id}/test")
def _handle_test(device_id: str, request: Request, user: User = Depends(current_user),
                 db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    """Test the connection: the machine's worker polls it once and answers."""
    d = _managed(db, user, device_id)
    db.close()  # don't hold a connection while the worker answers
    redis = request.app.state.ctx.redis
    answer = control.ask(redis, d.id, "test") if control.worker_alive(redis, d.id) else None
    if answer is None:
        raise ApiError(504, "No worker answered for the machine {id}: is FabQueue running "
                            "its device workers?", id=d.id)
    if not answer.get("ok"):
        raise ApiError(409, "The machine {id} did not answer: {reason}", id=d.id,
                       reason=answer.get("message") or answer.get("state") or "")
    return {"ok": True, "device": d.id, "state": answer.get("state"),
            "message": answer.get("message")}
