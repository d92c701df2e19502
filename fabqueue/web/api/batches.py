"""``/api/batches``: a teacher hands in a whole class at once; staff decide on it at once."""

from __future__ import annotations

import csv
import io
import zipfile
import zlib
from pathlib import PurePosixPath
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabqueue.core.access import Role, can_manage_job, is_staff
from fabqueue.core.findings import Refused
from fabqueue.core.jobs import JobStatus
from fabqueue.i18n import gettext
from fabqueue.store.models import Batch, Job, Site, User
from fabqueue.store.queries import visible_batches
from fabqueue.web import approval
from fabqueue.web.deps import ApiError, current_user, get_db, request_locale
from fabqueue.web.intake import FORMATS, display_name, enqueue_analysis_safely, submit
from fabqueue.web.params import IdPath
from fabqueue.web.present import iso, job_out
from fabqueue.web.pupils import (
    Pupils,
    batch_names_visible,
    ends_on_field,
    form_flag,
    iso_day,
)
from fabqueue.web.storage import check_quota, note_new, refused_leaves_nothing
from fabqueue.web.uploads import ParsedUpload, parse_upload

router = APIRouter(prefix="/api/batches", tags=["batches"])

BATCH_SCHEMA = {
    "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["class_name", "material"],
        "properties": {
            "files": {"type": "array", "items": {"type": "string", "format": "binary"},
                      "description": "model files, or one zip (may hold students.csv)"},
            "class_name": {"type": "string"},
            "material": {"type": "string"},
            "site": {"type": "string"},
            "copies": {"type": "integer", "default": 1},
            "students": {"type": "string",
                         "description": "optional CSV 'file,student' naming each file's pupil"},
            "budget_g": {"type": "number"},
            "basis_confirmed": {"type": "boolean", "default": False,
                                "description": "the teacher confirms the school's basis for "
                                               "handing in the pupils' work"},
            "ends_on": {"type": "string", "format": "date",
                        "description": "the class's end date (default: 30 June of the "
                                       "school year); pupils' names go 30 days later"},
        }}}}}
}
STUDENT_CSV_NAMES = ("students.csv", "mokiniai.csv", "ucheniki.csv")


def student_from_filename(name: str) -> str:
    stem = PurePosixPath(name).stem
    return " ".join(stem.replace("_", " ").replace("-", " ").split()) or stem


def read_students_csv(text: str) -> dict[str, str]:
    """``file,student`` rows (a header row is allowed); keys are file names in lower case."""
    out: dict[str, str] = {}
    for row in csv.reader(io.StringIO(text)):
        if len(row) >= 2 and row[0].strip() and row[1].strip():
            key = row[0].strip().lower()
            if key in ("file", "failas", "файл"):
                continue
            out[PurePosixPath(key).name] = row[1].strip()
    return out


MAX_STUDENTS_CSV_BYTES = 256 * 1024  # some thousand pupils; a class has thirty


def _students_csv(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
    """The names list, refused by its declared size before a byte is inflated (and read no
    further than the limit, should the directory understate it)."""
    if info.file_size > MAX_STUDENTS_CSV_BYTES:
        raise ApiError(422, "The list of pupils ({name}) is larger than {limit} KB: one row "
                            "per file is enough.", name=PurePosixPath(info.filename).name,
                       limit=MAX_STUDENTS_CSV_BYTES // 1024)
    try:
        with zf.open(info) as src:
            data = src.read(MAX_STUDENTS_CSV_BYTES + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError):
        raise ApiError(422, "The zip file is damaged. Make it again and upload it.") from None
    return data[:MAX_STUDENTS_CSV_BYTES].decode("utf-8-sig", "replace")


def _zip_entries(ctx: Any, sha: str) -> tuple[list[tuple[str, str, int]], str | None]:
    """Unpack a class zip into the store after the guards pass: (name, sha, size) per model
    file, and the students CSV text if present."""
    from fabqueue.analysis.guards import ZipLimits, safe_zip_members

    path = ctx.files.path(sha)
    try:
        members = safe_zip_members(path, ZipLimits())
    except Refused as exc:
        raise ApiError(422, exc.finding.text, **exc.finding.params) from None
    except zipfile.BadZipFile:
        raise ApiError(422, "The zip file is damaged. Make it again and upload it.") from None
    entries: list[tuple[str, str, int]] = []
    csv_text = None
    with zipfile.ZipFile(path) as zf:
        for info in members:
            if info.is_dir():
                continue
            base = PurePosixPath(info.filename).name
            if base.lower() in STUDENT_CSV_NAMES:
                csv_text = _students_csv(zf, info)
                continue
            if base.startswith(".") or info.filename.startswith("__MACOSX/"):
                continue
            writer = ctx.files.writer(min(ctx.settings.max_upload_bytes, info.file_size))
            try:
                with zf.open(info) as src:
                    while chunk := src.read(1 << 20):
                        writer.write(chunk)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError):
                # a member whose bytes don't match its CRC or size, or an unknown
                # compression: the directory looked fine, the contents are not
                writer.abort()
                raise ApiError(422, "The zip file is damaged. Make it again and upload "
                                    "it.") from None
            s, size = writer.commit()
            note_new(s, writer.created)  # a later damaged member must not leave this one
            entries.append((base, s, size))
    return entries, csv_text


def batch_out(batch: Batch, locale: str, db: Session, viewer: User) -> dict[str, Any]:
    jobs = list(db.scalars(select(Job).where(Job.batch_id == batch.id).order_by(Job.id)))
    names = batch_names_visible(viewer, batch)
    counts: dict[str, int] = {}
    grams = cost = seconds = 0.0
    for j in jobs:
        counts[j.status] = counts.get(j.status, 0) + 1
        a = j.analysis or {}
        grams += float(a.get("material_g") or 0)
        cost += float(a.get("cost") or 0)
        seconds += float(a.get("estimated_seconds") or 0)
    return {
        "id": batch.id, "class_name": batch.class_name, "teacher": batch.teacher_id,
        "site": batch.site_id, "material": batch.material_id, "created_at": iso(batch.created_at),
        "budget_g": batch.budget_g,
        "basis_confirmed": batch.basis_confirmed, "ends_on": iso_day(batch.ends_on),
        "names_purged": batch.names_purged_at is not None,
        "jobs": [job_out(j, locale, full=False, names=names) for j in jobs],
        "totals": {"jobs": len(jobs), "by_status": counts, "material_g": round(grams, 1),
                   "cost": round(cost, 2), "estimated_seconds": round(seconds)},
    }


@router.post("", status_code=201, openapi_extra=BATCH_SCHEMA)
async def _handle_create(request: Request, user: User = Depends(current_user),
                         db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    if user.role not in (Role.TEACHER, Role.STAFF, Role.ADMIN):
        raise ApiError(403, "Only teachers and lab staff can hand in a class.")
    ctx = request.app.state.ctx
    form = await parse_upload(request, ctx.files, max_file_bytes=ctx.settings.max_upload_bytes,
                              max_files=ctx.settings.max_batch_files)
    stored = [f.sha256 for f in form.files]  # and every model taken out of a zip
    with refused_leaves_nothing(ctx, db, stored):
        return _create(request, user, db, ctx, form, stored)


def _create(request: Request, user: User, db: Session, ctx: Any, form: ParsedUpload,
            stored: list[str]) -> dict[str, Any]:
    class_name = (form.get("class_name") or "").strip()
    if not class_name:
        raise ApiError(422, "Name the class (for example 8b).")
    site = form.get("site") or user.site_id
    if site and db.get(Site, site) is None:
        raise ApiError(422, "There is no site {site}.", site=site)
    entries: list[tuple[str, str, int]] = []
    csv_text = form.get("students")
    for f in form.files:
        if f.filename.lower().endswith(".zip"):
            found, zip_csv = _zip_entries(ctx, f.sha256)
            entries += found
            csv_text = csv_text or zip_csv
        else:
            entries.append((display_name(f.filename), f.sha256, f.size))
    stored += [sha for _, sha, _ in entries]
    if not entries:
        raise ApiError(422, "The class has no model files. Add STL, 3MF, OBJ or SVG files, "
                            "or one zip of them.")
    if len(entries) > ctx.settings.max_batch_files:
        raise ApiError(422, "Too many files in one class (at most {max}).",
                       max=ctx.settings.max_batch_files)
    # a class counts against the teacher's store like single uploads (models unpacked from a
    # zip by their own size): a loop of hand-ins can't fill the disk either
    check_quota(ctx, db, user, sum(size for _, _, size in entries))
    students = read_students_csv(csv_text) if csv_text else {}
    budget = form.get("budget_g")
    batch = Batch(teacher_id=user.id, site_id=site, class_name=class_name[:200],
                  material_id=form.get("material"),
                  budget_g=_budget(budget), basis_confirmed=form_flag(form.get("basis_confirmed")),
                  ends_on=ends_on_field(form.get("ends_on"), ctx.settings))
    db.add(batch)
    db.flush()
    locale = request_locale(request, user)
    skipped: list[dict[str, str]] = []
    created: list[Job] = []
    pupils = Pupils(batch.class_name)
    for name, sha, size in entries:
        if PurePosixPath(name.lower()).suffix not in FORMATS or (name.lower().endswith(
                (".gcode", ".gco", ".g")) and not is_staff(user.role)):
            skipped.append({"file": name, "reason": gettext(
                locale, "This kind of file can't be used. Upload STL, 3MF or OBJ for "
                        "printing, or SVG for laser cutting.")})
            continue
        student = students.get(name.lower()) or student_from_filename(name)
        try:
            job = submit(ctx, db, user, sha256=sha, size=size, filename=name,
                         material_id=form.get("material"), copies=form.get("copies"),
                         site_id=site, batch_id=batch.id, student_name=student,
                         enqueue=False)
            job.pupil = pupils.of(student)
        except ApiError as exc:
            if exc.status_code == 422 and "material" in exc.message.lower():
                raise  # the whole class has the wrong material: say it once
            skipped.append({"file": name, "reason": exc.render(locale)})
            continue
        created.append(job)
    if not created:
        raise ApiError(422, "None of the files can be used: {problems}",
                       problems="; ".join(f"{s['file']}: {s['reason']}" for s in skipped))
    db.commit()
    for job in created:
        enqueue_analysis_safely(ctx, job.id)
    out = batch_out(batch, locale, db, user)
    out["skipped"] = skipped
    return out


def _budget(raw: str | None) -> float | None:
    """A class's budget in grams, or none: "²" passes ``isdigit`` but is no number."""
    try:
        value = float(raw) if raw else None
    except ValueError:
        raise ApiError(422, "The budget must be a number of grams.") from None
    if value is not None and not (0 <= value < 1e9):
        raise ApiError(422, "The budget must be a number of grams.")
    return value


def _load_batch(db: Session, user: User, batch_id: int) -> Batch:
    batch = db.get(Batch, batch_id)
    if batch is None:
        raise ApiError(404, "There is no class batch {id}.", id=batch_id)
    visible = db.scalar(visible_batches(user).where(Batch.id == batch_id))
    if visible is None:
        raise ApiError(403, "This class batch belongs to someone else.")
    return batch


@router.get("")
def _handle_list(request: Request, user: User = Depends(current_user),
                 db: Session = Depends(get_db, scope="function")) -> list[dict[str, Any]]:
    locale = request_locale(request, user)
    batches = db.scalars(visible_batches(user).order_by(Batch.id.desc()).limit(200))
    return [batch_out(b, locale, db, user) for b in batches]


@router.get("/{batch_id}")
def _handle_get(batch_id: IdPath, request: Request, user: User = Depends(current_user),
                db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    return batch_out(_load_batch(db, user, batch_id), request_locale(request, user), db, user)


class BatchDecision(BaseModel):
    reason: str | None = Field(None, max_length=2000)


def _decide(request: Request, db: Session, user: User, batch_id: int,
            approve: bool, reason: str | None) -> dict[str, Any]:
    batch = _load_batch(db, user, batch_id)
    if not can_manage_job(role=user.role, user_site=user.site_id, job_site=batch.site_id):
        raise ApiError(403, "Only lab staff of this site can do this.")
    if not approve and not (reason or "").strip():
        raise ApiError(422, "Give a reason, so the owner knows what to change.")
    ctx = request.app.state.ctx
    done: list[int] = []
    problems: list[dict[str, Any]] = []
    locale = request_locale(request, user)
    for job in list(batch.jobs):
        if job.status != JobStatus.AWAITING_APPROVAL:
            continue
        try:
            if approve:
                approval.approve(ctx, db, job, user)
            else:
                approval.reject(db, job, user, reason or "")
            done.append(job.id)
        except ApiError as exc:
            problems.append({"job": job.id, "reason": exc.render(locale)})
    db.commit()
    out = batch_out(batch, locale, db, user)
    out["decided"] = done
    out["problems"] = problems
    return out


@router.post("/{batch_id}/approve")
def _handle_approve(batch_id: IdPath, request: Request, user: User = Depends(current_user),
                    db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    return _decide(request, db, user, batch_id, True, None)


@router.post("/{batch_id}/reject")
def _handle_reject(batch_id: IdPath, body: BatchDecision, request: Request,
                   user: User = Depends(current_user),
                   db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    return _decide(request, db, user, batch_id, False, body.reason)
