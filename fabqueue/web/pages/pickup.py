"""Pickup pages: the staff shelf (one tap puts a part on a place, the next free one first;
labels; the disposal list), the hand-over page a label's QR code opens, and each person's
notification choices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabqueue.core.access import can_manage_job
from fabqueue.core.findings import N_
from fabqueue.core.jobs import JobStatus
from fabqueue.core.pickup import PickupState
from fabqueue.notify import EVENTS
from fabqueue.notify.outbox import user_choice
from fabqueue.queue import pickup as service
from fabqueue.store.models import Job, User
from fabqueue.store.models_pickup import NotificationPrefs, Pickup
from fabqueue.web.api.pickup import MAX_URLS, check_urls
from fabqueue.web.deps import ApiError, get_db, optional_user, request_locale
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

#: The events in people's words (the account page's choices).
EVENT_LABELS = {
    "approval_needed": N_("A job waits for approval (staff)"),
    "approved": N_("My job is approved"),
    "rejected": N_("My job is rejected"),
    "ready_for_pickup": N_("My part is ready for pickup"),
    "pickup_reminder": N_("Reminders to pick up my part"),
    "uncollected": N_("A part was not collected in time"),
    "filament_low": N_("Filament is running low (staff)"),
    "maintenance_due": N_("Maintenance is due (staff)"),
    "training_expiring": N_("My training expires soon"),
    "machine_error": N_("A machine reports an error (staff)"),
}
#: How long a finished laser part stays on the "to shelve" list without a pickup.
UNSHELVED_DAYS = 14


@router.get("/staff/pickup")
def shelf_page(request: Request, site: str | None = None,
               user: User | None = Depends(optional_user),
               db: Session = Depends(get_db, scope="function")) -> Response:
    if user is None:
        return redirect("/login")
    if (denied := forbidden_unless_staff(request, user)) is not None:
        return denied
    sites, chosen = site_choice(db, user, site)
    rows = list(db.scalars(select(Pickup).where(
        Pickup.site_id == chosen,
        Pickup.state.in_([PickupState.WAITING.value, PickupState.UNCOLLECTED.value]))
        .order_by(Pickup.since).limit(500)))
    jobs = {j.id: j for j in db.scalars(select(Job).where(
        Job.id.in_([p.job_id for p in rows])))} if rows else {}
    # laser parts (no bed to clear) finished lately and not shelved yet
    recent = datetime.now(UTC) - timedelta(days=UNSHELVED_DAYS)
    unshelved = list(db.scalars(select(Job).where(
        Job.site_id == chosen, Job.status == JobStatus.DONE, Job.kind == "laser",
        Job.finished_at >= recent, Job.id.not_in(select(Pickup.job_id)))
        .order_by(Job.id).limit(100)))
    return render(request, "staff_pickup.html", user=user, sites=sites, site=chosen,
                  places=service.site_places(db, chosen),
                  suggested=service.suggest(db, chosen), jobs=jobs, unshelved=unshelved,
                  to_shelve=[p for p in rows if p.state == PickupState.WAITING and not p.place],
                  shelf=[p for p in rows if p.state == PickupState.WAITING and p.place],
                  disposal=[p for p in rows if p.state == PickupState.UNCOLLECTED])


@router.get("/p/{token}")
def handover_page(token: str, request: Request, user: User | None = Depends(optional_user),
                  db: Session = Depends(get_db, scope="function")) -> Response:
    """What a phone opens from a label: the part, its place, and (for the site's staff)
    the button that hands it over."""
    if user is None:
        return redirect("/login")
    p = db.scalar(select(Pickup).where(Pickup.token == token)) if len(token) <= 64 else None
    job = db.get(Job, p.job_id) if p else None
    if p is None or job is None:
        return error_page(request, user, 404, "There is no part with this code.")
    staff = can_manage_job(role=user.role, user_site=user.site_id, job_site=p.site_id)
    if not staff and user.id != job.owner_id:
        return error_page(request, user, 403, "Only lab staff of this site can do this.")
    return render(request, "pickup_handover.html", user=user, p=p, job=job, staff=staff)


@router.get("/account/notifications")
def prefs_page(request: Request, user: User | None = Depends(optional_user),
               db: Session = Depends(get_db, scope="function")) -> Response:
    if user is None:
        return redirect("/login")
    urls, events = user_choice(db, user)
    return render(request, "notification_prefs.html", user=user, urls=urls, chosen=events,
                  events=EVENTS, event_labels=EVENT_LABELS,
                  mail=bool(request.app.state.settings.smtp_host),
                  saved=request.query_params.get("ok"))


@router.post("/account/notifications")
async def save_prefs(request: Request, csrf_token: str = Form(""), apprise_urls: str = Form(""),
                     user: User | None = Depends(optional_user),
                     db: Session = Depends(get_db, scope="function")) -> Response:
    if user is None:
        return redirect("/login")
    require_csrf(request, csrf_token)
    form = await request.form()
    events = [e for e in EVENTS if form.get(f"event_{e}")]
    lines = [u.strip() for u in apprise_urls.splitlines() if u.strip()]
    try:
        if len(lines) > MAX_URLS:
            raise ApiError(422, "At most {count} addresses.", count=MAX_URLS)
        urls = check_urls(lines, user)
    except ApiError as exc:
        return render(request, "notification_prefs.html", status_code=422, user=user,
                      urls=lines, chosen=events, events=EVENTS, event_labels=EVENT_LABELS,
                      mail=bool(request.app.state.settings.smtp_host),
                      error=exc.render(request_locale(request, user)))
    prefs = db.get(NotificationPrefs, user.id)
    if prefs is None:
        prefs = NotificationPrefs(user_id=user.id)
        db.add(prefs)
    prefs.apprise_urls = urls
    prefs.events = events
    prefs.updated_at = datetime.now(UTC)
    return committed_redirect(db, "/account/notifications?ok=1")
