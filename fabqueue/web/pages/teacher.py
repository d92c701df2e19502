"""Teacher pages: hand in a class (many files or a zip, pupils' names), the class board, CSV."""

from __future__ import annotations

import io

from babel.dates import format_date
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabqueue.core.access import Role
from fabqueue.core.findings import N_
from fabqueue.core.pupils import default_ends_on
from fabqueue.i18n import babel_locale, gettext
from fabqueue.store.models import Batch, Material, User
from fabqueue.store.queries import visible_batches
from fabqueue.web.csv_export import SafeWriter
from fabqueue.web.deps import get_db, optional_user, request_locale
from fabqueue.web.pages import labels
from fabqueue.web.pages.common import error_page, redirect
from fabqueue.web.pages.render import render
from fabqueue.web.params import IdPath
from fabqueue.web.present import render_findings
from fabqueue.web.pupils import batch_names_visible, lab_today, shown_file_name

router = APIRouter(include_in_schema=False)
FINISHED = ("done",)
WAITING = ("analyzing", "awaiting_approval", "approved", "slicing", "ready", "running")


def _may_use(user: User) -> bool:
    return user.role in (Role.TEACHER, Role.STAFF, Role.ADMIN)


def batch_totals(batch: Batch) -> dict[str, float]:
    grams = sum(((j.analysis or {}).get("material_g") or 0) * j.copies for j in batch.jobs)
    used = sum(((j.analysis or {}).get("material_g") or 0) * j.copies for j in batch.jobs
               if j.status in FINISHED)
    return {"grams": grams, "used_g": used,
            "done": sum(j.status in FINISHED for j in batch.jobs),
            "waiting": sum(j.status in WAITING for j in batch.jobs),
            "problems": sum(j.status not in FINISHED + WAITING for j in batch.jobs)}


@router.get("/classes")
def classes(request: Request, user: User | None = Depends(optional_user),
            db: Session = Depends(get_db, scope="function")) -> Response:
    if user is None:
        return redirect("/login")
    if not _may_use(user):
        return error_page(request, user, 403, "Only teachers and lab staff can hand in a class.")
    batches = list(db.scalars(visible_batches(user).order_by(Batch.id.desc()).limit(100)))
    mats = list(db.scalars(select(Material).order_by(Material.kind, Material.id)))
    return render(request, "classes.html", user=user, batches=batches, materials=mats,
                  totals={b.id: batch_totals(b) for b in batches},
                  default_ends_on=default_ends_on(lab_today(request.app.state.settings)))


def _load(db: Session, user: User, batch_id: int) -> Batch | None:
    return db.scalar(visible_batches(user).where(Batch.id == batch_id))


@router.get("/classes/{batch_id}")
def class_board(batch_id: IdPath, request: Request, user: User | None = Depends(optional_user),
                db: Session = Depends(get_db, scope="function")) -> Response:
    if user is None:
        return redirect("/login")
    batch = _load(db, user, batch_id)
    if batch is None:
        return error_page(request, user, 403 if db.get(Batch, batch_id) else 404,
                          "This class batch belongs to someone else.")
    locale = request_locale(request, user)
    # What a teacher decides on: each pupil's problems (errors) and warnings, in words.
    findings = {j.id: {k: render_findings((j.analysis or {}).get(k), locale)
                       for k in ("errors", "warnings")} for j in batch.jobs}
    ends = (format_date(batch.ends_on, "medium", locale=babel_locale(locale))
            if batch.ends_on else "–")
    return render(request, "class_board.html", user=user, batch=batch,
                  totals=batch_totals(batch), findings=findings,
                  names=batch_names_visible(user, batch), ends_on_text=ends)


@router.get("/classes/{batch_id}/export.csv")
def class_csv(batch_id: IdPath, request: Request, user: User | None = Depends(optional_user),
              db: Session = Depends(get_db, scope="function")) -> Response:
    if user is None:
        return redirect("/login")
    batch = _load(db, user, batch_id)
    if batch is None:
        return error_page(request, user, 403, "This class batch belongs to someone else.")
    locale = request_locale(request, user)
    t = lambda s: gettext(locale, s)  # noqa: E731
    out = io.StringIO()
    w = SafeWriter(out)  # names and file names are the users' own text
    names = batch_names_visible(user, batch)
    w.writerow([t(N_("Pupil")), t(N_("File")), t(N_("Job")), t(N_("Status")),
                t(N_("Material")), "g", t(N_("Time")) + " (min)", t(N_("Cost")),
                t(N_("Pseudonym"))])
    for j in batch.jobs:
        a = j.analysis or {}
        w.writerow([(j.student_name or "") if names else "", shown_file_name(j, names), j.id,
                    t(labels.JOB_STATUS.get(j.status, j.status)), j.material_id,
                    a.get("material_g") or "",
                    round(a["estimated_seconds"] / 60) if a.get("estimated_seconds") else "",
                    a.get("cost") if a.get("cost") is not None else "", j.pupil or ""])
    name = f"class-{batch.id}.csv"
    return Response("\ufeff" + out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
