"""Trainings per user, maintenance per machine, machines out of order (issue 17).

``/api/users/{id}/trainings``: staff with the training (any staff when it is not a staff
training) grant and revoke; a record is never deleted, a revocation is one more fact on it.
``/api/devices/{id}/maintenance`` and ``/out-of-order``: staff of the machine's site.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabqueue import events
from fabqueue.core.access import can_manage_device, is_staff
from fabqueue.core.start_gate import Verdict
from fabqueue.i18n import gettext
from fabqueue.store import trainings as st
from fabqueue.store.jobs import queue_event
from fabqueue.store.models import Device, User
from fabqueue.store.models_trainings import (
    DeviceOutage,
    MaintenanceRecord,
    MaintenanceTask,
    TrainingDef,
)
from fabqueue.web.deps import ApiError, current_user, get_db, request_locale
from fabqueue.web.params import IdPath
from fabqueue.web.present import iso

router = APIRouter(tags=["trainings"])

# an id of the devices file (a training's, a maintenance task's)
FileId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class GateError(ApiError):
    """A refusal of the start gate: the reason code travels with the words (``code``)."""

    def __init__(self, status_code: int, code: str, message: str, /, **params: Any) -> None:
        super().__init__(status_code, message, **params)
        self.code = code


def now(request: Request) -> datetime:
    """The request's time; tests put a fake clock on ``app.state.clock``."""
    clock: Callable[[], datetime] | None = getattr(request.app.state, "clock", None)
    return clock() if clock is not None else datetime.now(UTC)


def tz(request: Request) -> str:
    return str(request.app.state.settings.timezone)


def refuse(request: Request, user: User | None, v: Verdict) -> GateError:
    """The gate's verdict as a 403 in the reader's language, naming the training."""
    locale = request_locale(request, user)
    params = dict(v.params)
    if v.training is not None:
        params["training"] = v.training.title(locale)
    # the machine can't start (409, whoever asks); the person may not start it (403)
    status = 409 if v.code in ("maintenance_due", "out_of_order") else 403
    return GateError(status, v.code or "", v.text, **params)


def enforce(request: Request, db: Session, d: Device, job: Any, user: User, *,
            check_machine: bool = True) -> None:
    """Raise the gate's refusal, if any (every start path of the web calls this)."""
    v = st.check(db, d, job, user, now(request), tz(request), check_machine=check_machine)
    if not v.ok:
        raise refuse(request, user, v)


# -- trainings of a user --------------------------------------------------------------------
def _person(db: Session, user_id: int) -> User:
    u = db.get(User, user_id)
    if u is None:
        raise ApiError(404, "There is no user {id}.", id=user_id)
    return u


def _training(db: Session, training_id: str) -> TrainingDef:
    t = db.get(TrainingDef, training_id)
    if t is None:
        raise ApiError(404, "There is no training {id}.", id=training_id)
    return t


def user_trainings(db: Session, u: User, today: date, locale: str) -> list[dict[str, Any]]:
    rules = {t.id: t for t in st.all_trainings(db)}
    return [st.grant_out(rules.get(g.training_id), g, today, locale)
            for g in st.grant_rows(db, u.id)]


@router.get("/api/trainings")
def _handle_definitions(request: Request, user: User = Depends(current_user),
                        db: Session = Depends(get_db, scope="function")) -> list[dict[str, Any]]:
    locale = request_locale(request, user)
    return [{"id": t.id, "name": t.title(locale), "devices": list(t.devices),
             "kinds": list(t.kinds), "valid_days": t.valid_days,
             "renew_on_use": t.renew_on_use, "staff": t.staff}
            for t in st.all_trainings(db)]


@router.get("/api/users/{user_id}/trainings")
def _handle_list(user_id: IdPath, request: Request, user: User = Depends(current_user),
                 db: Session = Depends(get_db, scope="function")) -> list[dict[str, Any]]:
    if user.id != user_id and not is_staff(user.role):
        raise ApiError(403, "Only lab staff can see other people's trainings.")
    u = _person(db, user_id)
    return user_trainings(db, u, st.lab_date(now(request), tz(request)),
                          request_locale(request, user))


class GrantIn(BaseModel):
    training: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    on: date | None = Field(None, description="the day of the training (default: today)")


def _may_grant(request: Request, db: Session, user: User, t: TrainingDef) -> None:
    try:
        st.may_grant(db, user, t, st.lab_date(now(request), tz(request)))
    except st.GrantRefused as exc:
        locale = request_locale(request, user)
        params = dict(exc.params)
        if "training" in params:
            params["training"] = st.rule(t).title(locale)
        raise GateError(403, exc.code, exc.text, **params) from None


@router.post("/api/users/{user_id}/trainings", status_code=201)
def _handle_grant(user_id: IdPath, body: GrantIn, request: Request,
                  user: User = Depends(current_user),
                  db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    t = _training(db, body.training)
    _may_grant(request, db, user, t)
    u = _person(db, user_id)
    today = st.lab_date(now(request), tz(request))
    on = body.on or today
    if on > today:
        raise ApiError(422, "A training can't be granted for a day still to come.")
    g = st.grant(db, u, t, on, user)
    db.commit()
    return st.grant_out(st.rule(t), g, today, request_locale(request, user))


@router.delete("/api/users/{user_id}/trainings/{training}")
def _handle_revoke(user_id: IdPath, training: FileId, request: Request,
                   user: User = Depends(current_user),
                   db: Session = Depends(get_db, scope="function")) -> list[dict[str, Any]]:
    t = _training(db, training)
    _may_grant(request, db, user, t)
    u = _person(db, user_id)
    if not st.revoke(db, u, t.id, user, now(request)):
        raise ApiError(404, "{user} holds no training {id} to revoke.", user=u.name, id=t.id)
    db.commit()
    return user_trainings(db, u, st.lab_date(now(request), tz(request)),
                          request_locale(request, user))


# -- maintenance and out of order -----------------------------------------------------------
def _device(db: Session, device_id: str) -> Device:
    d = db.get(Device, device_id)
    if d is None:
        raise ApiError(404, "There is no machine {id}.", id=device_id)
    return d


def _managed(db: Session, user: User, device_id: str) -> Device:
    d = _device(db, device_id)
    if not can_manage_device(role=user.role, user_site=user.site_id, device_site=d.site_id):
        raise ApiError(403, "Only lab staff of this site can control this machine.")
    return d


def task_title(t: MaintenanceTask, locale: str) -> str:
    names = t.name or {}
    if locale in names:
        return str(names[locale])
    # a built-in template's English name is a msgid: translated like any other
    return gettext(locale, str(names.get("en") or t.task))


def maintenance_out(db: Session, d: Device, at: datetime, locale: str) -> dict[str, Any]:
    tasks = []
    for v in st.tasks_of(db, d, at):
        t = v.task
        history = db.scalars(select(MaintenanceRecord).where(MaintenanceRecord.task_id == t.id)
                             .order_by(MaintenanceRecord.done_at.desc()).limit(20))
        tasks.append({
            "task": t.task, "name": task_title(t, locale), "state": v.status.state.value,
            "fraction": v.status.fraction, "nearest": v.status.counter,
            "every": {k: getattr(t, f"every_{k}") for k in ("hours", "jobs", "days",
                                                             "filament_m")},
            "counters": {"hours": v.counters.hours, "jobs": v.counters.jobs,
                         "days": v.counters.days, "filament_m": v.counters.filament_m},
            "since": iso(t.since),
            "history": [{"done_at": iso(r.done_at), "by": r.done_by, "note": r.note}
                        for r in history]})
    out = st.open_outage(db, d.id)
    return {"device": d.id, "tasks": tasks,
            "out_of_order": None if out is None else {"reason": out.reason, "by": out.by,
                                                      "since": iso(out.since)}}


@router.get("/api/devices/{device_id}/maintenance")
def _handle_maintenance(device_id: str, request: Request, user: User = Depends(current_user),
                        db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    d = _device(db, device_id)
    return maintenance_out(db, d, now(request), request_locale(request, user))


class DoneIn(BaseModel):
    note: str = Field("", max_length=2000)


def _publish(db: Session, d: Device, what: str) -> None:
    queue_event(db, events.DEVICE_STATE, {"device": d.id, "site": d.site_id, "state": d.state,
                                          "job": d.current_job_id, "change": what})


@router.post("/api/devices/{device_id}/maintenance/{task}/done")
def _handle_done(device_id: str, task: FileId, body: DoneIn, request: Request,
                 user: User = Depends(current_user),
                 db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    d = _managed(db, user, device_id)
    t = db.scalar(select(MaintenanceTask).where(MaintenanceTask.device_id == d.id,
                                                MaintenanceTask.task == task))
    if t is None:
        raise ApiError(404, "The machine {device} has no maintenance task {task}.",
                       device=d.id, task=task)
    st.mark_done(db, t, user, body.note.strip(), now(request))
    _publish(db, d, "maintenance_done")
    db.commit()
    return maintenance_out(db, d, now(request), request_locale(request, user))


class OutIn(BaseModel):
    reason: str = Field(..., min_length=1, max_length=1000)


@router.post("/api/devices/{device_id}/out-of-order")
def _handle_out(device_id: str, body: OutIn, request: Request,
                user: User = Depends(current_user),
                db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    d = _managed(db, user, device_id)
    reason = body.reason.strip()
    if not reason:
        raise ApiError(422, "Say why the machine is out of order.")
    current = st.open_outage(db, d.id)
    if current is not None:
        current.reason = reason  # a new reason replaces the old; the outage goes on
    else:
        db.add(DeviceOutage(device_id=d.id, reason=reason, by=user.id, since=now(request)))
    _publish(db, d, "out_of_order")
    db.commit()
    return maintenance_out(db, d, now(request), request_locale(request, user))


@router.delete("/api/devices/{device_id}/out-of-order")
def _handle_back(device_id: str, request: Request, user: User = Depends(current_user),
                 db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    d = _managed(db, user, device_id)
    current = st.open_outage(db, d.id)
    if current is None:
        raise ApiError(409, "The machine {id} is not out of order.", id=d.id)
    current.returned_at, current.returned_by = now(request), user.id
    _publish(db, d, "back_in_order")
    db.commit()
    return maintenance_out(db, d, now(request), request_locale(request, user))


def used(request: Request, db: Session, user: User, d: Device) -> None:
    """The operator ran the machine: trainings that renew on use are renewed."""
    st.mark_used(db, user.id, d, st.lab_date(now(request), tz(request)))
