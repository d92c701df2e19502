"""Pickup and notification preferences (issue 18): shelf places, labels, the hand-over by
the label's QR code, a class collected at once, the disposal list; each user's channels."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import apprise
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabqueue.core.access import Role, can_manage_job, is_staff
from fabqueue.core.pickup import PickupState
from fabqueue.notify import EVENTS
from fabqueue.notify.outbox import user_choice
from fabqueue.notify.sender import redact
from fabqueue.queue import pickup as service
from fabqueue.store.models import Batch, User
from fabqueue.store.models_pickup import Delivery, NotificationPrefs, Pickup
from fabqueue.web.api.jobs import load_managed, load_visible
from fabqueue.web.deps import ApiError, admin_user, current_user, get_db, staff_user
from fabqueue.web.params import IdPath
from fabqueue.web.present import iso, pickup_out

router = APIRouter(tags=["pickup"])

MAX_URLS = 10


def public_url(request: Request) -> str:
    return (request.app.state.settings.public_url or str(request.base_url)).rstrip("/")


def _refused(exc: service.PickupRefused) -> ApiError:
    return ApiError(409, exc.message, **exc.params)


def _site_staff(user: User, site: str | None) -> None:
    if not can_manage_job(role=user.role, user_site=user.site_id, job_site=site):
        raise ApiError(403, "Only lab staff of this site can do this.")


class PlaceIn(BaseModel):
    place: str = Field(..., min_length=1, max_length=40)


@router.post("/api/jobs/{job_id}/pickup/place")
def _handle_place(job_id: IdPath, body: PlaceIn, user: User = Depends(current_user),
                  db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    job = load_managed(db, user, job_id)
    try:
        p = service.set_place(db, job, body.place, actor_id=user.id)
    except service.PickupRefused as exc:
        raise _refused(exc) from None
    db.commit()
    return {"job": job.id, "pickup": pickup_out(p, staff=True)}


@router.get("/api/jobs/{job_id}/pickup")
def _handle_get(job_id: IdPath, user: User = Depends(current_user),
                db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    job = load_visible(db, user, job_id)
    staff = can_manage_job(role=user.role, user_site=user.site_id, job_site=job.site_id)
    out = pickup_out(db.get(Pickup, job.id), staff=staff)
    return {"job": job.id, "pickup": out,
            "suggested": service.suggest(db, job.site_id) if staff else None,
            "places": service.site_places(db, job.site_id) if staff else []}


@router.get("/api/jobs/{job_id}/label")
def _handle_label(job_id: IdPath, request: Request, user: User = Depends(current_user),
                  db: Session = Depends(get_db, scope="function")) -> Response:
    job = load_managed(db, user, job_id)
    p = service.start(db, job, actor_id=user.id)  # a laser part may be labelled first
    if p is None:
        raise ApiError(409, "Job {id} is not done: there is no part to put on a shelf.",
                       id=job.id)
    db.commit()
    # here, not at the top: fpdf2 (with fontTools and Pillow) is ~28 MB that serve would
    # carry idle for the few labels a day (bench/RESULTS.md, "Many machines per process")
    from fabqueue.web.pickup_label import label_pdf

    tz = ZoneInfo(request.app.state.settings.timezone)
    pdf = label_pdf(url=f"{public_url(request)}/p/{p.token}", job_id=job.id, place=p.place,
                    day=service.aware(p.since).astimezone(tz).date())
    return Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="fabqueue-{job.id}.pdf"'})


def by_token(db: Session, token: str) -> Pickup:
    p = db.scalar(select(Pickup).where(Pickup.token == token)) if len(token) <= 64 else None
    if p is None:
        raise ApiError(404, "There is no part with this code.")
    return p


@router.post("/api/pickup/{token}")
def _handle_handover(token: str, user: User = Depends(current_user),
                     db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    """Staff confirm the hand-over at the shelf (the label's QR code opens it)."""
    p = by_token(db, token)
    _site_staff(user, p.site_id)
    if p.state == PickupState.DISPOSED:
        raise ApiError(409, "The part of job {id} is already handed over or disposed of.",
                       id=p.job_id)
    service.collect(db, p, actor_id=user.id)  # collected already: the same answer
    db.commit()
    return {"job": p.job_id, "pickup": pickup_out(p, staff=True)}


@router.post("/api/batches/{batch_id}/collected")
def _handle_batch(batch_id: IdPath, user: User = Depends(current_user),
                  db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    """A teacher takes the whole class's parts in one action (or staff hand them over)."""
    batch = db.get(Batch, batch_id)
    if batch is None:
        raise ApiError(404, "There is no class {id}.", id=batch_id)
    if batch.teacher_id != user.id:
        _site_staff(user, batch.site_id)
    jobs = service.collect_batch(db, batch, actor_id=user.id)
    db.commit()
    return {"batch": batch.id, "collected": jobs}


@router.post("/api/jobs/{job_id}/pickup/disposed")
def _handle_disposed(job_id: IdPath, user: User = Depends(current_user),
                     db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    job = load_managed(db, user, job_id)
    p = db.get(Pickup, job.id)
    if p is None or p.state not in (PickupState.UNCOLLECTED, PickupState.DISPOSED):
        raise ApiError(409, "Only a part nobody collected in time can be disposed of.")
    service.dispose(db, p, actor_id=user.id)
    db.commit()
    return {"job": job.id, "pickup": pickup_out(p, staff=True)}


@router.get("/api/pickup")
def _handle_list(state: PickupState | None = None, site: str | None = None,
                 user: User = Depends(staff_user),
                 db: Session = Depends(get_db, scope="function")) -> list[dict[str, Any]]:
    """The shelf of a site (``state=uncollected``: the disposal list)."""
    site = site if user.role == Role.ADMIN else user.site_id
    q = select(Pickup).order_by(Pickup.since)
    if site:
        q = q.where(Pickup.site_id == site)
    q = q.where(Pickup.state == state.value) if state else q.where(
        Pickup.state.in_([PickupState.WAITING.value, PickupState.UNCOLLECTED.value]))
    return [{"job": p.job_id, "site": p.site_id, **(pickup_out(p, staff=True) or {})}
            for p in db.scalars(q.limit(500))]


# -- a user's own channels and events ---------------------------------------------------

class PrefsIn(BaseModel):
    apprise_urls: list[str] = Field(default_factory=list, max_length=MAX_URLS)
    events: list[str] = Field(default_factory=list, max_length=len(EVENTS))


def _private_host(url: str) -> bool:
    host = (urlsplit(url).hostname or "").strip("[]").lower()
    if host in ("localhost", "") or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_unspecified


def check_urls(urls: list[str], user: User) -> list[str]:
    out = []
    for url in urls:
        url = url.strip()
        if not url or len(url) > 1000 or not apprise.Apprise().add(url):
            raise ApiError(422, "This is not a notification address FabQueue can use: "
                                "{url}", url=url[:80])
        # residents' addresses are reached from the lab's server: not its own network
        if not is_staff(user.role) and _private_host(url):
            raise ApiError(422, "This is not a notification address FabQueue can use: "
                                "{url}", url=url[:80])
        out.append(url)
    return out


def prefs_out(db: Session, user: User) -> dict[str, Any]:
    urls, events = user_choice(db, user)
    return {"apprise_urls": urls, "events": events, "available_events": list(EVENTS),
            "email": bool(user.email)}


@router.get("/api/me/notifications")
def _handle_prefs(user: User = Depends(current_user),
                  db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    return prefs_out(db, user)


@router.put("/api/me/notifications")
def _handle_put_prefs(body: PrefsIn, user: User = Depends(current_user),
                      db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    unknown = [e for e in body.events if e not in EVENTS]
    if unknown:
        raise ApiError(422, "Unknown events: {events}.", events=", ".join(unknown)[:200])
    urls = check_urls(body.apprise_urls, user)
    prefs = db.get(NotificationPrefs, user.id)
    if prefs is None:
        prefs = NotificationPrefs(user_id=user.id)
        db.add(prefs)
    prefs.apprise_urls = urls
    prefs.events = [e for e in EVENTS if e in body.events]
    prefs.updated_at = datetime.now(UTC)
    db.commit()
    return prefs_out(db, user)


@router.get("/api/notifications/failed")
def _handle_failed(user: User = Depends(admin_user),
                   db: Session = Depends(get_db, scope="function")) -> list[dict[str, Any]]:
    """Messages that could not be sent (after every retry) or are being retried."""
    rows = db.scalars(select(Delivery).where(
        (Delivery.state == "failed") | ((Delivery.state == "pending") & (Delivery.attempts > 0)))
        .order_by(Delivery.id.desc()).limit(200))
    return [{"id": d.id, "event": d.event, "state": d.state, "channel": redact(d.channel),
             "user": d.user_id, "site": d.site_id, "job": d.job_id, "attempts": d.attempts,
             "error": d.last_error, "next_try": iso(d.not_before) if d.state == "pending"
             else None, "created_at": iso(d.created_at)} for d in rows]
