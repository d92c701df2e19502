"""The staff page of trainings and maintenance (issue 17): each machine's service tasks and
whether it is out of order, who is trained on it, whose training lapses soon, and forms to
grant or revoke a training, record a task done, take a machine out of order or back.

The forms go through the same rules as the API (``store.trainings``, the start gate's
grant rule), so a page can't do what the API refuses."""

from __future__ import annotations

from datetime import date

from babel.dates import format_date
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabqueue.i18n import babel_locale
from fabqueue.store import trainings as st
from fabqueue.store.models import Device, User
from fabqueue.store.models_trainings import (
    DeviceOutage,
    MaintenanceTask,
    TrainingDef,
)
from fabqueue.web.api.trainings import now, tz
from fabqueue.web.deps import ApiError, get_db, optional_user, request_locale
from fabqueue.web.pages import care
from fabqueue.web.pages.common import (
    committed_redirect,
    error_page,
    forbidden_unless_staff,
    redirect,
    require_csrf,
)
from fabqueue.web.pages.render import render
from fabqueue.web.pages.staff import site_choice

router = APIRouter(include_in_schema=False)

@router.get("/staff/trainings")
def trainings_page(request: Request, site: str | None = None,
                   user: User | None = Depends(optional_user),
                   db: Session = Depends(get_db, scope="function")) -> Response:
    if user is None:
        return redirect("/login")
    if (denied := forbidden_unless_staff(request, user)) is not None:
        return denied
    locale = request_locale(request, user)
    at = now(request)
    today = st.lab_date(at, tz(request))
    sites, chosen = site_choice(db, user, site)
    devices = list(db.scalars(select(Device).where(Device.site_id == chosen)
                              .order_by(Device.id)))
    rules = st.all_trainings(db)
    holders = care.holders(db, today, locale)
    machines = [care.machine_care(db, d, at, locale, rules, holders) for d in devices]
    lapsing = sorted(((t.title(locale), h) for t in rules for h in holders.get(t.id, [])
                      if h["lapsing"]), key=lambda p: p[1]["ends"])
    people = list(db.scalars(select(User).where(User.disabled.is_(False))
                             .order_by(User.name).limit(500)))
    return render(request, "staff_trainings.html", user=user, sites=sites, site=chosen,
                  machines=machines, trainings=[(t, holders.get(t.id, [])) for t in rules],
                  title=lambda t: t.title(locale), lapsing=lapsing, people=people,
                  today=today.isoformat(),
                  fmt_date=lambda d: format_date(d, "medium", locale=babel_locale(locale)))


def _back(site: str | None) -> str:
    return f"/staff/trainings?site={site}" if site else "/staff/trainings"


def _staff(request: Request, user: User | None, csrf_token: str) -> Response | None:
    if user is None:
        return redirect("/login")
    if (denied := forbidden_unless_staff(request, user)) is not None:
        return denied
    require_csrf(request, csrf_token)
    return None


@router.post("/staff/trainings/grant")
def grant_form(request: Request, csrf_token: str = Form(""), username: str = Form(""),
               training: str = Form(""), on: str = Form(""), site: str = Form(""),
               revoke: str = Form(""), user: User | None = Depends(optional_user),
               db: Session = Depends(get_db, scope="function")) -> Response:
    if (stop := _staff(request, user, csrf_token)) is not None:
        return stop
    assert user is not None
    t = db.get(TrainingDef, training[:64])
    person = db.scalar(select(User).where(User.name == username[:100]))
    if t is None or person is None:
        return error_page(request, user, 404, "There is no such person or training.")
    today = st.lab_date(now(request), tz(request))
    try:
        st.may_grant(db, user, t, today)
    except st.GrantRefused as exc:
        params = {**exc.params, "training": st.rule(t).title(request_locale(request, user))} \
            if "training" in exc.params else exc.params
        return error_page(request, user, 403, exc.text, **params)
    if revoke:
        st.revoke(db, person, t.id, user, now(request))
        return committed_redirect(db, _back(site))
    try:
        day = date.fromisoformat(on) if on else today
    except ValueError:
        return error_page(request, user, 422, "Give the date as YYYY-MM-DD.")
    if day > today:
        return error_page(request, user, 422, "A training can't be granted for a day still "
                                              "to come.")
    st.grant(db, person, t, day, user)
    return committed_redirect(db, _back(site))


def _managed_device(db: Session, user: User, device_id: str) -> Device:
    from fabqueue.core.access import can_manage_device

    d = db.get(Device, device_id[:64])
    if d is None or not can_manage_device(role=user.role, user_site=user.site_id,
                                          device_site=d.site_id):
        raise ApiError(403, "Only lab staff of this site can control this machine.")
    return d


@router.post("/staff/trainings/maintenance")
def maintenance_form(request: Request, csrf_token: str = Form(""), device: str = Form(""),
                     task: str = Form(""), note: str = Form(""), site: str = Form(""),
                     user: User | None = Depends(optional_user),
                     db: Session = Depends(get_db, scope="function")) -> Response:
    if (stop := _staff(request, user, csrf_token)) is not None:
        return stop
    assert user is not None
    d = _managed_device(db, user, device)
    t = db.scalar(select(MaintenanceTask).where(MaintenanceTask.device_id == d.id,
                                                MaintenanceTask.task == task[:64]))
    if t is None:
        return error_page(request, user, 404, "The machine {device} has no maintenance task "
                                              "{task}.", device=d.id, task=task[:64])
    st.mark_done(db, t, user, note.strip()[:2000], now(request))
    return committed_redirect(db, _back(site))


@router.post("/staff/trainings/out-of-order")
def out_of_order_form(request: Request, csrf_token: str = Form(""), device: str = Form(""),
                      reason: str = Form(""), back: str = Form(""), site: str = Form(""),
                      user: User | None = Depends(optional_user),
                      db: Session = Depends(get_db, scope="function")) -> Response:
    if (stop := _staff(request, user, csrf_token)) is not None:
        return stop
    assert user is not None
    d = _managed_device(db, user, device)
    current = st.open_outage(db, d.id)
    if back:
        if current is not None:
            current.returned_at, current.returned_by = now(request), user.id
        return committed_redirect(db, _back(site))
    if not reason.strip():
        return error_page(request, user, 422, "Say why the machine is out of order.")
    if current is None:
        db.add(DeviceOutage(device_id=d.id, reason=reason.strip()[:1000], by=user.id,
                            since=now(request)))
    else:
        current.reason = reason.strip()[:1000]
    return committed_redirect(db, _back(site))
