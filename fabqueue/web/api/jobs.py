"""``/api/jobs``: upload, list, show, approve, reject, cancel, audit log, files."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fabqueue.core.access import can_manage_job, can_view_job
from fabqueue.core.jobs import OWNER_CANCELLABLE, QUEUED, JobStatus
from fabqueue.core.reasons import N_, reason
from fabqueue.store.jobs import change_status, record
from fabqueue.store.models import Batch, Job, JobEvent, User
from fabqueue.store.models_pickup import Pickup
from fabqueue.store.queries import visible_jobs
from fabqueue.web import approval
from fabqueue.web.deps import ApiError, current_user, get_db, request_locale
from fabqueue.web.intake import submit
from fabqueue.web.params import IdPath, IdQuery, OffsetQuery
from fabqueue.web.present import event_out, job_out, pickup_out
from fabqueue.web.pupils import job_names_visible, shown_file_name
from fabqueue.web.storage import check_quota, refused_leaves_nothing
from fabqueue.web.uploads import parse_upload

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

UPLOAD_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object",
            "required": ["file", "material"],
            "properties": {
                "file": {"type": "string", "format": "binary",
                         "description": "STL, 3MF or OBJ (print), SVG (laser), G-code (staff)"},
                "material": {"type": "string", "description": "material id, e.g. PLA"},
                "copies": {"type": "integer", "minimum": 1, "default": 1},
                "site": {"type": "string"},
                "quality": {"type": "string", "enum": ["draft", "normal", "fine"]},
                "note": {"type": "string"},
            },
        }}},
    }
}


def load_visible(db: Session, user: User, job_id: int) -> Job:
    job = db.get(Job, job_id)
    if job is None:
        raise ApiError(404, "There is no job {id}.", id=job_id)
    teacher = db.get(Batch, job.batch_id).teacher_id if job.batch_id else None
    if not can_view_job(role=user.role, user_id=user.id, user_site=user.site_id,
                        owner_id=job.owner_id, job_site=job.site_id, batch_teacher_id=teacher):
        raise ApiError(403, "This job belongs to someone else.")
    return job


def files_kept(job: Job) -> None:
    """Retention or erasure removed this job's files; its row stays for the statistics."""
    if job.files_purged_at is not None:
        raise ApiError(410, "This job's files were removed: FabQueue keeps them only for a "
                            "while after the job ended.")


def load_managed(db: Session, user: User, job_id: int) -> Job:
    job = load_visible(db, user, job_id)
    if not can_manage_job(role=user.role, user_site=user.site_id, job_site=job.site_id):
        raise ApiError(403, "Only lab staff of this site can do this.")
    return job


@router.post("", status_code=201, openapi_extra=UPLOAD_SCHEMA)
async def _handle_upload(request: Request, user: User = Depends(current_user),
                         db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    ctx = request.app.state.ctx
    form = await parse_upload(request, ctx.files, max_file_bytes=ctx.settings.max_upload_bytes)
    with refused_leaves_nothing(ctx, db, [f.sha256 for f in form.files]):
        upload = next((f for f in form.files if f.field == "file"), None)
        if upload is None:
            raise ApiError(422, "Choose a file to upload (form field 'file').")
        check_quota(ctx, db, user, upload.size)
        job = submit(ctx, db, user, sha256=upload.sha256, size=upload.size,
                     filename=upload.filename, material_id=form.get("material"),
                     copies=form.get("copies"), site_id=form.get("site") or None,
                     note=form.get("note"), quality=form.get("quality") or None)
    return job_out(job, request_locale(request, user),
                   names=job_names_visible(user, job))


@router.get("")
def _handle_list(
    request: Request,
    status: list[JobStatus] | None = Query(None),
    site: str | None = None,
    batch: IdQuery = None,
    mine: bool = False,
    limit: int = Query(50, ge=1, le=200),
    offset: OffsetQuery = 0,
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> dict[str, Any]:
    q = visible_jobs(user)
    if status:
        q = q.where(Job.status.in_([s.value for s in status]))
    if site:
        q = q.where(Job.site_id == site)
    if batch is not None:
        q = q.where(Job.batch_id == batch)
    if mine:
        q = q.where(Job.owner_id == user.id)
    # COUNT(*) on the filter itself, not over a subquery of whole rows: with
    # ix_jobs_owner_site, SQLite counts a staff member's jobs from the index alone
    total = db.scalar(q.with_only_columns(func.count(), maintain_column_froms=True))
    rows = db.scalars(q.order_by(Job.id.desc()).limit(limit).offset(offset))
    locale = request_locale(request, user)
    return {"items": [job_out(j, locale, full=False, names=job_names_visible(user, j))
                      for j in rows], "total": total,
            "limit": limit, "offset": offset}


@router.get("/{job_id}")
def _handle_get(job_id: IdPath, request: Request, user: User = Depends(current_user),
                db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    job = load_visible(db, user, job_id)
    out = job_out(job, request_locale(request, user),
                   names=job_names_visible(user, job))
    out["pickup"] = pickup_out(db.get(Pickup, job.id), staff=can_manage_job(
        role=user.role, user_site=user.site_id, job_site=job.site_id))
    out["queue"] = None
    if job.status in QUEUED:
        from fabqueue.store.forecast import site_forecast

        kind = "laser" if job.kind == "laser" else "printer"
        out["queue"] = site_forecast(db, job.site_id, kind).get(job.id)
    return out


@router.get("/{job_id}/events")
def _handle_events(job_id: IdPath, request: Request, user: User = Depends(current_user),
                   db: Session = Depends(get_db, scope="function")) -> list[dict[str, Any]]:
    load_visible(db, user, job_id)
    evs = list(db.scalars(select(JobEvent).where(JobEvent.job_id == job_id)
                          .order_by(JobEvent.id)))
    ids = {e.actor_id for e in evs if e.actor_id}
    names = dict(db.execute(select(User.id, User.name).where(User.id.in_(ids))).all())
    return [event_out(e, names, request_locale(request, user)) for e in evs]


# Uploaded files are served as downloads only, never inline: an SVG with a script must
# not run in our origin.
DOWNLOAD_HEADERS = {"X-Content-Type-Options": "nosniff",
                    "Content-Security-Policy": "default-src 'none'; sandbox"}


@router.get("/{job_id}/file")
def _handle_file(job_id: IdPath, request: Request, user: User = Depends(current_user),
                 db: Session = Depends(get_db, scope="function")) -> Response:
    job = load_visible(db, user, job_id)
    files_kept(job)
    path = request.app.state.files.path(job.file_sha256)
    return FileResponse(path, media_type="application/octet-stream",
                        filename=shown_file_name(job, job_names_visible(user, job)),
                        headers=DOWNLOAD_HEADERS, content_disposition_type="attachment")


@router.get("/{job_id}/thumbnail")
def _handle_thumbnail(job_id: IdPath, request: Request, user: User = Depends(current_user),
                      db: Session = Depends(get_db, scope="function")) -> Response:
    job = load_visible(db, user, job_id)
    files_kept(job)
    if not job.thumbnail_sha256:
        raise ApiError(404, "There is no picture of this job yet.")
    return FileResponse(request.app.state.files.path(job.thumbnail_sha256),
                        media_type="image/png", headers=DOWNLOAD_HEADERS)


@router.get("/{job_id}/program")
def _handle_program(job_id: IdPath, request: Request, user: User = Depends(current_user),
                    db: Session = Depends(get_db, scope="function")) -> Response:
    job = load_visible(db, user, job_id)
    files_kept(job)
    if not job.program_sha256:
        raise ApiError(404, "This job has no machine program yet.")
    return FileResponse(request.app.state.files.path(job.program_sha256),
                        media_type="text/plain", filename=f"job-{job.id}.gcode",
                        headers=DOWNLOAD_HEADERS, content_disposition_type="attachment")


class ApproveIn(BaseModel):
    device: str | None = Field(None, description="pin the job to this machine")
    priority: int | None = Field(None, ge=-10, le=10, description="higher runs sooner")
    front: bool = Field(False, description="move to the front of its queue")
    quality: str | None = None
    note: str | None = None


class RejectIn(BaseModel):
    reason: str = Field(..., min_length=1, max_length=2000)


@router.post("/{job_id}/approve")
def _handle_approve(job_id: IdPath, request: Request, body: ApproveIn | None = None,
                    user: User = Depends(current_user),
                    db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    job = load_managed(db, user, job_id)
    body = body or ApproveIn()
    approval.approve(request.app.state.ctx, db, job, user, device=body.device,
                     priority=body.priority, front=body.front, quality=body.quality,
                     note=body.note)
    return job_out(job, request_locale(request, user),
                   names=job_names_visible(user, job))


@router.post("/{job_id}/reject")
def _handle_reject(job_id: IdPath, body: RejectIn, request: Request,
                   user: User = Depends(current_user),
                   db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    job = load_managed(db, user, job_id)
    approval.reject(db, job, user, body.reason)
    return job_out(job, request_locale(request, user),
                   names=job_names_visible(user, job))


@router.post("/{job_id}/cancel")
def _handle_cancel(job_id: IdPath, request: Request, user: User = Depends(current_user),
                   db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    job = load_visible(db, user, job_id)
    staff = can_manage_job(role=user.role, user_site=user.site_id, job_site=job.site_id)
    if job.owner_id != user.id and not staff:
        raise ApiError(403, "Only the owner or lab staff can cancel this job.")
    if job.status not in OWNER_CANCELLABLE and not (staff and job.status in (
            JobStatus.RUNNING, JobStatus.INTERRUPTED)):
        raise ApiError(409, "This job can't be cancelled now: it is {status}.",
                       status=job.status)
    approval.cancel(request.app.state.ctx, db, job, user)
    return job_out(job, request_locale(request, user),
                   names=job_names_visible(user, job))


class DecisionIn(BaseModel):
    reason: str | None = Field(None, max_length=2000)


@router.post("/{job_id}/requeue")
def _handle_requeue(job_id: IdPath, request: Request, body: DecisionIn | None = None,
                    user: User = Depends(current_user),
                    db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    """Staff decide an interrupted (or failed) job runs again: it waits for a machine."""
    job = load_managed(db, user, job_id)
    approval.requeue(request.app.state.ctx, db, job, user, body.reason if body else None)
    return job_out(job, request_locale(request, user),
                   names=job_names_visible(user, job))


@router.post("/{job_id}/fail")
def _handle_fail(job_id: IdPath, request: Request, body: DecisionIn | None = None,
                 user: User = Depends(current_user),
                 db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    """Staff decide an interrupted job is over."""
    job = load_managed(db, user, job_id)
    if job.status != JobStatus.INTERRUPTED:
        raise ApiError(409, "Only an interrupted job can be marked failed; it is {status}.",
                       status=job.status)
    change_status(db, job, JobStatus.FAILED, actor_id=user.id,
                  reason=(body.reason if body else None) or reason(
                      "failed_by_staff", N_("marked failed by staff")))
    return job_out(job, request_locale(request, user),
                   names=job_names_visible(user, job))


class MoveIn(BaseModel):
    front: bool = True


@router.post("/{job_id}/move")
def _handle_move(job_id: IdPath, body: MoveIn, request: Request,
                 user: User = Depends(current_user),
                 db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    """Staff move a waiting job to the front (or back to normal order)."""
    job = load_managed(db, user, job_id)
    if job.status not in (JobStatus.APPROVED, JobStatus.SLICING, JobStatus.READY):
        raise ApiError(409, "Only a waiting job can be moved; it is {status}.",
                       status=job.status)
    job.priority = 10 if body.front else 0
    record(db, job, "moved_to_front" if body.front else "moved_back", actor_id=user.id)
    return job_out(job, request_locale(request, user),
                   names=job_names_visible(user, job))
