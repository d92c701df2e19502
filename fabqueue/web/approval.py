"""Staff decisions on jobs: approve (with checks a resident can act on), reject, cancel."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from fabqueue.config import Settings
from fabqueue.core import reasons
from fabqueue.core.findings import N_
from fabqueue.core.jobs import OWNER_CANCELLABLE, JobStatus
from fabqueue.queue import control
from fabqueue.queue.context import Context
from fabqueue.queue.pipeline import (
    dispatch_queue_name,
    enqueue_preparation,
    push_ready,
    target_device,
)
from fabqueue.store.jobs import StatusConflict, change_status, record
from fabqueue.store.models import Device, Job, Material, User
from fabqueue.store.queries import laser_library
from fabqueue.web.deps import ApiError
from fabqueue.web.intake import QUALITIES

log = logging.getLogger(__name__)


def _check_device(db: Session, job: Job, device_id: str) -> Device:
    device = db.get(Device, device_id)
    kind = "laser" if job.kind == "laser" else "printer"
    if device is None or device.kind != kind:
        raise ApiError(422, "There is no {kind} {device}.", kind=kind, device=device_id)
    if job.site_id and device.site_id != job.site_id:
        raise ApiError(422, "The machine {device} is at another site.", device=device_id)
    if job.material_id not in (device.materials or []):
        raise ApiError(409, "The machine {device} does not take {material}.",
                       device=device_id, material=job.material_id)
    return device


#: What the loser of a race is told (the same words as when it asks too late).
CONFLICT = {
    JobStatus.APPROVED: "This job can't be approved now: it is {status}.",
    JobStatus.REJECTED: "This job can't be rejected now: it is {status}.",
    JobStatus.CANCELLED: "This job can't be cancelled now: it is {status}.",
}


def decide(db: Session, job: Job, target: JobStatus, **kw: object) -> None:
    """A staff or owner decision as one conditional status change: when two people decide
    on the same job at once (approve and cancel, two approvals), exactly one wins and the
    other gets 409 with the status the winner left (no second audit event)."""
    try:
        change_status(db, job, target, **kw)  # type: ignore[arg-type]
    except StatusConflict:
        db.refresh(job)
        raise ApiError(409, CONFLICT.get(target, CONFLICT[JobStatus.CANCELLED]),
                       status=job.status) from None


def approval_problem(db: Session, job: Job, settings: Settings) -> None:
    """Refuse at approval what can never run: nothing fits, unknown laser material."""
    analysis = job.analysis or {}
    if analysis.get("needs_choice"):
        raise ApiError(409, "Choose what the laser does with each colour of the drawing "
                            "first.")
    if not analysis.get("ok"):
        raise ApiError(409, "This job has problems that must be fixed first.")
    if job.kind == "laser":
        library = laser_library(settings)
        material = db.get(Material, job.material_id)
        key = (material.laser_material if material else None) or job.material_id
        if library is not None and key not in library:
            raise ApiError(409, "The laser material {material} is not in the material "
                                "library, so the lab has no settings to cut it.",
                           material=key)
    if not analysis.get("fits"):
        what = "laser" if job.kind == "laser" else "printer"
        raise ApiError(409, "It does not fit any {what} at this site that takes {material}: "
                            "{size}.", what=what, material=job.material_id,
                       size=" × ".join(f"{v:.0f}" for v in (analysis.get("bbox_mm")
                                                            or analysis.get("size_mm") or []))
                       + " mm")


def approve(ctx: Context, db: Session, job: Job, user: User, *, device: str | None = None,
            priority: int | None = None, front: bool = False, quality: str | None = None,
            note: str | None = None) -> None:
    if job.status != JobStatus.AWAITING_APPROVAL:
        raise ApiError(409, "This job can't be approved now: it is {status}.",
                       status=job.status)
    approval_problem(db, job, ctx.settings)
    if device:
        d = _check_device(db, job, device)
        if d.id not in (job.analysis or {}).get("fits", []):
            raise ApiError(409, "It does not fit the machine {device}.", device=d.id)
        job.pinned_device_id = d.id
    if priority is not None:
        job.priority = priority
    if front:
        job.priority = max(job.priority, 10)
    if quality:
        if quality not in QUALITIES:
            raise ApiError(422, "Quality must be one of: {choices}.",
                           choices=", ".join(QUALITIES))
        job.quality = quality
    decide(db, job, JobStatus.APPROVED, actor_id=user.id, reason=note,
           data={"device": device, "priority": job.priority})
    db.commit()
    enqueue_preparation_safely(ctx, job.id)


def enqueue_preparation_safely(ctx: Context, job_id: int) -> None:
    try:
        enqueue_preparation(ctx, job_id)
    except Exception:  # Redis away: the reconciler re-queues approved jobs
        log.exception("could not queue preparation of job %s", job_id)


def reject(db: Session, job: Job, user: User, reason: str) -> None:
    reason = reason.strip()
    if not reason:
        raise ApiError(422, "Give a reason, so the owner knows what to change.")
    if job.status not in (JobStatus.AWAITING_APPROVAL, JobStatus.APPROVED):
        raise ApiError(409, "This job can't be rejected now: it is {status}.",
                       status=job.status)
    decide(db, job, JobStatus.REJECTED, actor_id=user.id, reason=stock_reason(reason))


def stock_reason(text: str) -> str:
    """One of the menu's reasons (in any of our languages) is stored as its code, so the
    owner reads it in their language; words staff typed themselves are kept as written."""
    from fabqueue.i18n import LOCALES, gettext
    from fabqueue.web.pages.labels import REJECT_REASONS

    for msgid in REJECT_REASONS:
        if text == msgid or any(text == gettext(loc, msgid) for loc in LOCALES):
            return reasons.reason("stock_reject_reason", msgid)
    return text


CANCELLED = reasons.reason("cancelled", N_("cancelled"))
REQUEUED = reasons.reason("requeued_by_staff", N_("requeued by staff"))


def cancel(ctx: Context, db: Session, job: Job, user: User) -> None:
    if job.status in OWNER_CANCELLABLE:
        decide(db, job, JobStatus.CANCELLED, actor_id=user.id, reason=CANCELLED)
        return
    if job.status == JobStatus.INTERRUPTED:
        decide(db, job, JobStatus.CANCELLED, actor_id=user.id, reason=CANCELLED)
        return
    # running: the device worker stops the machine and records the end
    if job.device_id:
        control.send(ctx.redis, job.device_id, "cancel", job=job.id, by=user.id)
        record(db, job, "cancel_requested", actor_id=user.id)


def requeue(ctx: Context, db: Session, job: Job, user: User, reason: str | None) -> None:
    if job.status not in (JobStatus.INTERRUPTED, JobStatus.FAILED):
        raise ApiError(409, "Only an interrupted or failed job can run again; it is {status}.",
                       status=job.status)
    if not job.program_sha256:
        decide(db, job, JobStatus.APPROVED, actor_id=user.id, reason=reason or REQUEUED)
        db.commit()
        enqueue_preparation_safely(ctx, job.id)
        return
    decide(db, job, JobStatus.READY, actor_id=user.id, reason=reason or REQUEUED)
    job.device_id = None
    db.commit()
    try:
        device = target_device(db, job)
        if device is not None:
            push_ready(ctx, job.id, dispatch_queue_name(job, device), at_front=True)
    except Exception:  # Redis away: the reconciler puts ready jobs back on their queue
        log.exception("could not queue job %s again", job.id)
