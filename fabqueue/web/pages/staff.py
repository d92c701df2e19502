"""Staff pages: the approval inbox, the machine board, the queue, history with filters."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from fabqueue.core.access import Role, can_manage_job
from fabqueue.core.jobs import JobStatus
from fabqueue.i18n import gettext, translations
from fabqueue.store.models import Batch, Device, Job, Site, User
from fabqueue.store.queries import visible_batches, visible_jobs
from fabqueue.web import approval
from fabqueue.web.api.jobs import load_managed
from fabqueue.web.api.trainings import now as clock_now
from fabqueue.web.api.trainings import tz as clock_tz
from fabqueue.web.deps import get_db, optional_user, request_locale
from fabqueue.web.pages import board, care, labels, queueinfo
from fabqueue.web.pages.common import (
    committed_redirect,
    forbidden_unless_staff,
    redirect,
    require_csrf,
)
from fabqueue.web.pages.queueinfo import QUEUE_SHOWN
from fabqueue.web.pages.render import render
from fabqueue.web.params import IdPath
from fabqueue.web.present import render_findings

router = APIRouter(include_in_schema=False)
PAGE = 50


def staff_sites(db: Session, user: User) -> list[Site]:
    q = select(Site).order_by(Site.id)
    if user.role != Role.ADMIN:
        q = q.where(Site.id == user.site_id)
    return list(db.scalars(q))


def owner_history(db: Session, owner_ids: set[int]) -> dict[int, dict[str, int]]:
    """Per owner, how many of their jobs ended how (staff judge a newcomer differently)."""
    out: dict[int, dict[str, int]] = {i: {} for i in owner_ids}
    rows = db.execute(select(Job.owner_id, Job.status, func.count()).where(
        Job.owner_id.in_(owner_ids)).group_by(Job.owner_id, Job.status))
    for owner, status, n in rows:
        out[owner][status] = n
    return out


@router.get("/staff")
def inbox(request: Request, user: User | None = Depends(optional_user),
          db: Session = Depends(get_db, scope="function")) -> Response:
    if user is None:
        return redirect("/login")
    if (denied := forbidden_unless_staff(request, user)) is not None:
        return denied
    locale = request_locale(request, user)
    pending = visible_jobs(user).where(Job.status == JobStatus.AWAITING_APPROVAL)
    total = db.scalar(pending.with_only_columns(func.count(), maintain_column_froms=True))
    waiting = list(db.scalars(pending.options(selectinload(Job.owner))
                              .order_by(Job.id).limit(PAGE)))
    warnings = {j.id: render_findings((j.analysis or {}).get("warnings"), locale)
                for j in waiting}
    # every class with work waiting, not just those on the first page of jobs: a class
    # handed in behind a long queue is still approved (or held back) as one
    batch_ids = set(db.scalars(pending.with_only_columns(Job.batch_id).where(
        Job.batch_id.is_not(None)).distinct().limit(PAGE)))
    batches = list(db.scalars(visible_batches(user).where(Batch.id.in_(batch_ids))))
    flagged = {b.id: [(j, render_findings((j.analysis or {}).get("warnings"), locale))
                      for j in b.jobs if j.status == JobStatus.AWAITING_APPROVAL
                      and (j.analysis or {}).get("warnings")] for b in batches}
    done = {k: request.query_params.get(k) for k in ("approved", "held")}
    return render(request, "staff_inbox.html", user=user, jobs=waiting, warnings=warnings,
                  total=total, flagged=flagged, batch_done=done,
                  history=owner_history(db, {j.owner_id for j in waiting}), batches=batches,
                  reasons=[gettext(locale, r) for r in labels.REJECT_REASONS])


@router.post("/staff/jobs/{job_id}/{decision}")
def decide(job_id: IdPath, decision: str, request: Request, reason: str = Form(""),
           reason_choice: str = Form(""), csrf_token: str = Form(""),
           user: User | None = Depends(optional_user),
           db: Session = Depends(get_db, scope="function")) -> Response:
    if user is None:
        return redirect("/login")
    require_csrf(request, csrf_token)
    job = load_managed(db, user, job_id)
    if decision == "approve":
        approval.approve(request.app.state.ctx, db, job, user)
    elif decision == "reject":
        approval.reject(db, job, user, reason.strip() or reason_choice.strip())
    elif decision in ("front", "up", "down"):
        move(db, job, decision)
        return committed_redirect(db, f"/staff/queue?site={job.site_id or ''}&kind={job.kind}")
    return committed_redirect(db, "/staff")


def move(db: Session, job: Job, direction: str) -> None:
    """Reorder by priority (what the dispatcher obeys before fair share)."""
    if direction == "front":
        top = db.scalar(select(func.max(Job.priority)).where(
            Job.site_id == job.site_id, Job.status.in_(("approved", "slicing", "ready"))))
        job.priority = max(job.priority, (top or 0) + 1)
    elif direction == "up":
        job.priority = min(job.priority + 1, 10)
    elif direction == "down":
        job.priority = max(job.priority - 1, -10)
    job.priority = max(-10, min(10, job.priority))


@router.post("/staff/batches/{batch_id}/approve")
def approve_batch(batch_id: IdPath, request: Request, csrf_token: str = Form(""),
                  include_flagged: str = Form(""),
                  user: User | None = Depends(optional_user),
                  db: Session = Depends(get_db, scope="function")) -> Response:
    if user is None:
        return redirect("/login")
    require_csrf(request, csrf_token)
    batch = db.scalar(visible_batches(user).where(Batch.id == batch_id))
    approved = held = 0
    if batch is not None and can_manage_job(role=user.role, user_site=user.site_id,
                                            job_site=batch.site_id):
        for job in list(batch.jobs):
            if job.status != JobStatus.AWAITING_APPROVAL:
                continue
            # A job with warnings (inches? too big? over budget?) is approved with the class
            # only when staff ticked that they looked at them; otherwise it waits, listed.
            if (job.analysis or {}).get("warnings") and not include_flagged:
                held += 1
                continue
            approval.approve(request.app.state.ctx, db, job, user)
            approved += 1
    return committed_redirect(db, f"/staff?approved={approved}&held={held}")


def site_choice(db: Session, user: User, site: str | None) -> tuple[list[Site], str | None]:
    """The sites a staff page may show this user, and the one it shows: the one asked for
    if allowed, else the user's own, else the first."""
    sites = staff_sites(db, user)
    ids = [s.id for s in sites]
    chosen = site if site in ids else (user.site_id if user.site_id in ids else
                                       (ids[0] if ids else None))
    return sites, chosen


@router.get("/staff/machines")
def machines(request: Request, site: str | None = None,
             user: User | None = Depends(optional_user),
             db: Session = Depends(get_db, scope="function")) -> Response:
    if user is None:
        return redirect("/login")
    if (denied := forbidden_unless_staff(request, user)) is not None:
        return denied
    sites, chosen = site_choice(db, user, site)
    devices = list(db.scalars(select(Device).where(Device.site_id == chosen)
                              .order_by(Device.kind, Device.id)))
    job_ids = {d.current_job_id for d in devices if d.current_job_id}
    jobs = {j.id: j for j in db.scalars(select(Job).where(Job.id.in_(job_ids)))}
    ready_laser = list(db.scalars(select(Job).where(
        Job.kind == "laser", Job.status == JobStatus.READY, Job.site_id == chosen)
        .order_by(Job.priority.desc(), Job.id).limit(20)))
    locale = request_locale(request, user)
    tr = translations(locale)
    tiles = [board.tile(d, tr.gettext) for d in devices]
    cares = care.board_care(db, devices, clock_now(request), clock_tz(request), locale)
    checklist = [(key, tr.gettext(text)) for key, text in board.CHECKLIST_ITEMS.items()]
    return render(request, "staff_machines.html", user=user, sites=sites, site=chosen,
                  devices=devices, tiles=tiles, jobs=jobs, ready_laser=ready_laser,
                  checklist=checklist, waiting_for=board.waiting_for, care=cares,
                  temp_names={k: tr.gettext(v) for k, v in board.TEMPERATURE_NAMES.items()})


@router.get("/staff/queue")
def queue_page(request: Request, site: str | None = None, kind: str = "print",
               page: int = Query(1, ge=1, le=1000),
               user: User | None = Depends(optional_user),
               db: Session = Depends(get_db, scope="function")) -> Response:
    if user is None:
        return redirect("/login")
    if (denied := forbidden_unless_staff(request, user)) is not None:
        return denied
    sites, chosen = site_choice(db, user, site)
    kind = kind if kind in ("print", "laser") else "print"
    entries, total = queueinfo.queue_page(db, chosen, kind, page)
    return render(request, "staff_queue.html", user=user, sites=sites, site=chosen, kind=kind,
                  entries=entries, total=total, page=page,
                  pages=range(1, -(-total // QUEUE_SHOWN) + 1))


@router.get("/staff/history")
def history(request: Request, status: str | None = None, site: str | None = None,
            owner: str | None = None, q: str | None = None,
            page: int = Query(1, ge=1, le=10_000),
            user: User | None = Depends(optional_user),
            db: Session = Depends(get_db, scope="function")) -> Response:
    if user is None:
        return redirect("/login")
    if (denied := forbidden_unless_staff(request, user)) is not None:
        return denied
    query = visible_jobs(user)
    if status:
        query = query.where(Job.status == status)
    if site:
        query = query.where(Job.site_id == site)
    if owner:
        query = query.join(User, User.id == Job.owner_id).where(User.name == owner)
    if q:
        query = query.where(Job.file_name.contains(q))
    rows = list(db.scalars(query.options(selectinload(Job.owner))
                           .order_by(Job.id.desc()).limit(PAGE + 1)
                           .offset((page - 1) * PAGE)))
    filters: dict[str, Any] = {"status": status or "", "site": site or "",
                               "owner": owner or "", "q": q or ""}
    return render(request, "staff_history.html", user=user, jobs=rows[:PAGE],
                  more=len(rows) > PAGE, page=page, filters=filters,
                  statuses=list(labels.JOB_STATUS), sites=staff_sites(db, user))
