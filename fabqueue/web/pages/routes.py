"""Server-rendered pages: sign in, submit, my jobs, a job, the staff approval list.

They use the same intake and approval code as the API; templates and API stay separable.
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabqueue.core.access import can_manage_job, is_staff
from fabqueue.core.jobs import JobStatus
from fabqueue.i18n import LOCALES
from fabqueue.store.models import Job, Material, User
from fabqueue.store.queries import visible_jobs
from fabqueue.store.users import authenticate
from fabqueue.web import approval
from fabqueue.web.api.jobs import load_visible
from fabqueue.web.deps import ApiError, get_db, optional_user, request_locale
from fabqueue.web.intake import submit
from fabqueue.web.pages.render import render
from fabqueue.web.present import analysis_out
from fabqueue.web.uploads import parse_upload

router = APIRouter(include_in_schema=False)


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _form_csrf_ok(request: Request, sent: str | None) -> bool:
    expected = request.session.get("csrf")
    return bool(expected and sent and secrets.compare_digest(expected, sent))


@router.get("/login")
def login_page(request: Request) -> Response:
    return render(request, "login.html")


@router.post("/login")
def login(request: Request, username: str = Form(...), password: str = Form(...),
          csrf_token: str = Form(""), db: Session = Depends(get_db)) -> Response:
    if not _form_csrf_ok(request, csrf_token):
        return render(request, "login.html", status_code=403, error="csrf")
    user = authenticate(db, username, password)
    if user is None:
        return render(request, "login.html", status_code=401, error="credentials",
                      username=username)
    locale = request.session.get("locale")
    request.session.clear()
    request.session["uid"] = user.id
    if user.locale is None and locale:
        user.locale = locale
    return _redirect("/")


@router.post("/logout")
def logout(request: Request, csrf_token: str = Form("")) -> Response:
    if _form_csrf_ok(request, csrf_token):
        request.session.clear()
    return _redirect("/login")


@router.post("/lang")
def set_language(request: Request, locale: str = Form(...), csrf_token: str = Form(""),
                 next: str = Form("/"), db: Session = Depends(get_db)) -> Response:
    if locale in LOCALES and _form_csrf_ok(request, csrf_token):
        request.session["locale"] = locale
        uid = request.session.get("uid")
        if uid and (user := db.get(User, uid)) is not None:
            user.locale = locale
    return _redirect(next if next.startswith("/") and not next.startswith("//") else "/")


def _materials(db: Session) -> list[Material]:
    return list(db.scalars(select(Material).order_by(Material.kind, Material.id)))


@router.get("/")
def index(request: Request, user: User | None = Depends(optional_user),
          db: Session = Depends(get_db)) -> Response:
    if user is None:
        return _redirect("/login")
    jobs = list(db.scalars(visible_jobs(user).where(Job.owner_id == user.id)
                           .order_by(Job.id.desc()).limit(100)))
    return render(request, "index.html", user=user, jobs=jobs, materials=_materials(db))


@router.post("/submit")
async def submit_page(request: Request, user: User | None = Depends(optional_user),
                      db: Session = Depends(get_db)) -> Response:
    if user is None:
        return _redirect("/login")
    ctx = request.app.state.ctx
    form = await parse_upload(request, ctx.files, max_file_bytes=ctx.settings.max_upload_bytes)
    if not _form_csrf_ok(request, form.get("csrf_token")):
        raise ApiError(403, "The form has expired or did not come from FabQueue. "
                            "Reload the page and try again.")
    upload = next((f for f in form.files if f.field == "file"), None)
    if upload is None or not upload.filename:
        raise ApiError(422, "Choose a file to upload (form field 'file').")
    job = submit(ctx, db, user, sha256=upload.sha256, size=upload.size,
                 filename=upload.filename, material_id=form.get("material"),
                 copies=form.get("copies"), site_id=form.get("site") or None,
                 note=form.get("note"), quality=form.get("quality") or None)
    return _redirect(f"/jobs/{job.id}")


@router.get("/jobs/{job_id}")
def job_page(job_id: int, request: Request, user: User | None = Depends(optional_user),
             db: Session = Depends(get_db)) -> Response:
    if user is None:
        return _redirect("/login")
    try:
        job = load_visible(db, user, job_id)
    except ApiError as exc:
        return render(request, "error.html", status_code=exc.status_code, user=user,
                      message=exc.render(request_locale(request, user)))
    locale = request_locale(request, user)
    return render(request, "job.html", user=user, job=job,
                  analysis=analysis_out(job.analysis, locale),
                  staff=can_manage_job(role=user.role, user_site=user.site_id,
                                       job_site=job.site_id))


@router.get("/staff")
def staff_page(request: Request, user: User | None = Depends(optional_user),
               db: Session = Depends(get_db)) -> Response:
    if user is None:
        return _redirect("/login")
    if not is_staff(user.role):
        return render(request, "error.html", status_code=403, user=user,
                      message="Only lab staff can do this.")
    waiting = list(db.scalars(visible_jobs(user).where(
        Job.status == JobStatus.AWAITING_APPROVAL).order_by(Job.id).limit(200)))
    return render(request, "staff.html", user=user, jobs=waiting)


@router.post("/staff/jobs/{job_id}/{decision}")
def staff_decide(job_id: int, decision: str, request: Request, reason: str = Form(""),
                 csrf_token: str = Form(""), user: User | None = Depends(optional_user),
                 db: Session = Depends(get_db)) -> Response:
    if user is None:
        return _redirect("/login")
    if not _form_csrf_ok(request, csrf_token):
        raise ApiError(403, "The form has expired or did not come from FabQueue. "
                            "Reload the page and try again.")
    job = load_visible(db, user, job_id)
    if not can_manage_job(role=user.role, user_site=user.site_id, job_site=job.site_id):
        raise ApiError(403, "Only lab staff of this site can do this.")
    if decision == "approve":
        approval.approve(request.app.state.ctx, db, job, user)
    elif decision == "reject":
        approval.reject(db, job, user, reason)
    return _redirect("/staff")
