"""Resident pages: submit (drag and drop, progress), my jobs, one job live, notifications."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fabqueue.core.access import can_manage_job
from fabqueue.core.jobs import OWNER_CANCELLABLE
from fabqueue.store.models import Device, Job, JobEvent, Material, Notification, User
from fabqueue.store.models_pickup import Pickup
from fabqueue.store.queries import visible_jobs
from fabqueue.web import approval
from fabqueue.web.api.jobs import load_visible
from fabqueue.web.deps import ApiError, form_upload_user, get_db, optional_user, request_locale
from fabqueue.web.intake import submit
from fabqueue.web.pages.common import committed_redirect, error_page, redirect, require_csrf
from fabqueue.web.pages.queueinfo import position_of
from fabqueue.web.pages.render import render
from fabqueue.web.params import IdPath
from fabqueue.web.present import analysis_out, event_out
from fabqueue.web.storage import check_quota, refused_leaves_nothing
from fabqueue.web.uploads import parse_upload

router = APIRouter(include_in_schema=False)


def materials(db: Session) -> list[Material]:
    return list(db.scalars(select(Material).order_by(Material.kind, Material.id)))


@router.get("/")
def index(request: Request, user: User | None = Depends(optional_user),
          db: Session = Depends(get_db, scope="function")) -> Response:
    if user is None:
        return redirect("/login")
    jobs = list(db.scalars(visible_jobs(user).where(Job.owner_id == user.id)
                           .order_by(Job.id.desc()).limit(100)))
    return render(request, "index.html", user=user, jobs=jobs, materials=materials(db))


@router.post("/submit")
async def submit_page(request: Request, user: User | None = Depends(form_upload_user),
                      db: Session = Depends(get_db, scope="function")) -> Response:
    """The form's fallback when JavaScript is off (the page normally uploads by XHR)."""
    if user is None:
        return redirect("/login")
    ctx = request.app.state.ctx
    form = await parse_upload(request, ctx.files, max_file_bytes=ctx.settings.max_upload_bytes)
    # the token comes in the form field (parsed with the upload), never in the URL
    with refused_leaves_nothing(ctx, db, [f.sha256 for f in form.files]):
        require_csrf(request, form.get("csrf_token"))
        upload = next((f for f in form.files if f.field == "file"), None)
        if upload is None or not upload.filename:
            raise ApiError(422, "Choose a file to upload (form field 'file').")
        check_quota(ctx, db, user, upload.size)
        job = submit(ctx, db, user, sha256=upload.sha256, size=upload.size,
                     filename=upload.filename, material_id=form.get("material"),
                     copies=form.get("copies"), site_id=form.get("site") or None,
                     note=form.get("note"), quality=form.get("quality") or None)
    return committed_redirect(db, f"/jobs/{job.id}")


def job_events(db: Session, job_id: int, locale: str) -> list[dict[str, object]]:
    evs = list(db.scalars(select(JobEvent).where(JobEvent.job_id == job_id)
                          .order_by(JobEvent.id)))
    ids = {e.actor_id for e in evs if e.actor_id}
    names = dict(db.execute(select(User.id, User.name).where(User.id.in_(ids))).tuples().all())
    return [event_out(e, names, locale) for e in evs]


@router.get("/jobs/{job_id}")
def job_page(job_id: IdPath, request: Request, user: User | None = Depends(optional_user),
             db: Session = Depends(get_db, scope="function")) -> Response:
    if user is None:
        return redirect("/login")
    try:
        job = load_visible(db, user, job_id)
    except ApiError as exc:
        return error_page(request, user, exc.status_code, exc.message, **exc.params)
    locale = request_locale(request, user)
    staff = can_manage_job(role=user.role, user_site=user.site_id, job_site=job.site_id)
    device = db.get(Device, job.device_id) if job.device_id else None
    return render(request, "job.html", user=user, job=job,
                  analysis=analysis_out(job.analysis, locale), staff=staff,
                  queue=position_of(db, job), device=device, events=job_events(db, job.id, locale),
                  pickup=db.get(Pickup, job.id),
                  can_cancel=(job.owner_id == user.id or staff)
                  and job.status in OWNER_CANCELLABLE)


@router.post("/jobs/{job_id}/cancel")
def cancel_page(job_id: IdPath, request: Request, csrf_token: str = Form(""),
                user: User | None = Depends(optional_user),
                db: Session = Depends(get_db, scope="function")) -> Response:
    if user is None:
        return redirect("/login")
    require_csrf(request, csrf_token)
    job = load_visible(db, user, job_id)
    staff = can_manage_job(role=user.role, user_site=user.site_id, job_site=job.site_id)
    if job.owner_id != user.id and not staff:
        raise ApiError(403, "Only the owner or lab staff can cancel this job.")
    if job.status not in OWNER_CANCELLABLE:
        raise ApiError(409, "This job can't be cancelled now: it is {status}.",
                       status=job.status)
    approval.cancel(request.app.state.ctx, db, job, user)
    return committed_redirect(db, f"/jobs/{job.id}")


@router.get("/notifications")
def notifications_page(request: Request, user: User | None = Depends(optional_user),
                       db: Session = Depends(get_db, scope="function")) -> Response:
    if user is None:
        return redirect("/login")
    items = list(db.scalars(select(Notification).where(Notification.user_id == user.id)
                            .order_by(Notification.id.desc()).limit(100)))
    return render(request, "notifications.html", user=user, items=items)


@router.post("/notifications/read")
def notifications_read(request: Request, csrf_token: str = Form(""),
                       user: User | None = Depends(optional_user),
                       db: Session = Depends(get_db, scope="function")) -> Response:
    if user is None:
        return redirect("/login")
    require_csrf(request, csrf_token)
    db.execute(update(Notification).where(Notification.user_id == user.id)
               .values(read=True))
    return committed_redirect(db, "/notifications")
