"""Taking in a submission (API, pages and class batches share it): check the cheap things at
once with a clear 4xx, store the job, queue its analysis. A job whose analysis can't be
queued (Redis down) stays ``analyzing`` and the reconciler queues it later: nothing is lost."""

from __future__ import annotations

import logging
import unicodedata
from pathlib import PurePosixPath, PureWindowsPath

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabqueue import events
from fabqueue.core.access import is_staff
from fabqueue.core.jobs import JobKind, JobStatus
from fabqueue.queue.context import Context
from fabqueue.store.jobs import queue_event, record
from fabqueue.store.models import Job, Material, Site, User
from fabqueue.store.queries import default_site
from fabqueue.web.deps import ApiError

log = logging.getLogger(__name__)

FORMATS = {
    ".stl": "stl", ".3mf": "3mf", ".obj": "obj", ".svg": "svg",
    ".gcode": "gcode", ".gco": "gcode", ".g": "gcode",
}
QUALITIES = ("draft", "normal", "fine")
MAX_COPIES = 50
MAX_NOTE = 2000


def display_name(raw: str) -> str:
    """A file name fit to show: the last path component, no control characters, ≤ 200 chars.
    It is only ever text: the store names files by their hash."""
    name = PureWindowsPath(PurePosixPath(raw or "").name).name
    name = "".join(c for c in unicodedata.normalize("NFC", name) if c.isprintable())
    name = name.strip().lstrip(".") or "upload"
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 200 - len(ext) - 1] + dot + ext) if dot and len(ext) <= 10 else name[:200]
    return name


def file_format(filename: str) -> str:
    suffix = PurePosixPath(filename.lower()).suffix
    fmt = FORMATS.get(suffix)
    if fmt is None:
        raise ApiError(415, "This kind of file can't be used. Upload STL, 3MF or OBJ for "
                            "printing, or SVG for laser cutting.")
    return fmt


def parse_copies(raw: str | None) -> int:
    try:
        copies = int(raw) if raw not in (None, "") else 1
    except ValueError:
        raise ApiError(422, "Copies must be a whole number from 1 to {max}.",
                       max=MAX_COPIES) from None
    if not 1 <= copies <= MAX_COPIES:
        raise ApiError(422, "Copies must be a whole number from 1 to {max}.", max=MAX_COPIES)
    return copies


def check_material(db: Session, material_id: str | None, kind: JobKind) -> Material:
    wanted = "sheet" if kind == JobKind.LASER else "filament"
    choices = ", ".join(db.scalars(select(Material.id).where(Material.kind == wanted)
                                   .order_by(Material.id)))
    if not material_id:
        raise ApiError(422, "Choose a material: {choices}.", choices=choices)
    material = db.get(Material, material_id)
    if material is None or material.kind != wanted:
        raise ApiError(422, "The material {material} can't be used for this file. Choose one "
                            "of: {choices}.", material=material_id, choices=choices)
    return material


def submit(
    ctx: Context,
    db: Session,
    user: User,
    *,
    sha256: str,
    size: int,
    filename: str,
    material_id: str | None,
    copies: str | int | None = 1,
    site_id: str | None = None,
    note: str | None = None,
    quality: str | None = None,
    batch_id: int | None = None,
    student_name: str | None = None,
    enqueue: bool = True,
) -> Job:
    name = display_name(filename)
    fmt = file_format(name)
    if fmt == "gcode" and not is_staff(user.role):
        raise ApiError(403, "G-code is accepted from lab staff only. Upload the model (STL, "
                            "3MF or OBJ) and the lab will slice it.")
    if size == 0:
        raise ApiError(422, "The file is empty. Export it again from your design program.")
    kind = JobKind.LASER if fmt == "svg" else JobKind.PRINT
    material = check_material(db, material_id, kind)
    n = parse_copies(str(copies) if copies is not None else None)
    quality = quality or ctx.settings.default_quality
    if quality not in QUALITIES:
        raise ApiError(422, "Quality must be one of: {choices}.", choices=", ".join(QUALITIES))
    if note and len(note) > MAX_NOTE:
        raise ApiError(422, "The note is too long (at most {max} characters).", max=MAX_NOTE)
    if site_id:
        if db.get(Site, site_id) is None:
            raise ApiError(422, "There is no site {site}.", site=site_id)
    else:
        site_id = default_site(db, material.id, "laser" if kind == JobKind.LASER else "printer")
    job = Job(kind=kind.value, status=JobStatus.ANALYZING.value, owner_id=user.id,
              site_id=site_id, material_id=material.id, quality=quality, copies=n,
              note=note or None, file_sha256=sha256, file_name=name, file_format=fmt,
              size_bytes=size, batch_id=batch_id, student_name=student_name)
    db.add(job)
    db.flush()
    record(db, job, "uploaded", actor_id=user.id, data={"file": name, "size": size})
    queue_event(db, events.JOB_STATUS, {"job": job.id, "to": job.status,
                                        "owner": job.owner_id, "site": job.site_id,
                                        "batch": job.batch_id})
    if enqueue:
        db.commit()
        enqueue_analysis_safely(ctx, job.id)
    # else a class batch: its caller commits all jobs at once (or none, when one file
    # refuses the whole class) and queues their analysis after that
    return job


def enqueue_analysis_safely(ctx: Context, job_id: int) -> None:
    from fabqueue.queue.tasks import enqueue_analysis

    try:
        enqueue_analysis(ctx, job_id)
    except Exception:  # Redis away: the reconciler will queue it from the database
        log.exception("could not queue analysis of job %s; the reconciler will", job_id)
