"""``/api/me/export`` and erasure (issue 21): every user takes away or erases their data;
admins erase any account, teachers one pupil of their class."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fabqueue.core.access import Role
from fabqueue.store.erasure import erase_pupil, erase_user
from fabqueue.store.models import Batch, Job, JobEvent, Notification, User
from fabqueue.web.api.auth import user_out
from fabqueue.web.deps import ApiError, admin_user, current_user, get_db, request_locale
from fabqueue.web.params import IdPath
from fabqueue.web.present import iso, job_out
from fabqueue.web.signin import current_password_ok_async

router = APIRouter(prefix="/api", tags=["privacy"])


class EraseMe(BaseModel):
    password: str = Field(..., min_length=1, max_length=200,
                          description="the current password: erasure can't be undone")


def _history(db: Session, job_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Each job's audit entries with who did it as an id and a role: other people's names
    are theirs, not the caller's data."""
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in job_ids}
    if not job_ids:
        return out
    roles = dict(db.execute(select(User.id, User.role)).all())
    for ev in db.scalars(select(JobEvent).where(JobEvent.job_id.in_(job_ids))
                         .order_by(JobEvent.id)):
        out[ev.job_id].append({
            "at": iso(ev.at), "action": ev.action, "from": ev.from_status, "to": ev.to_status,
            "reason": ev.reason, "data": ev.data, "by_id": ev.actor_id,
            "by_role": roles.get(ev.actor_id) if ev.actor_id else None})
    return out


def _notification_settings(db: Session, user: User) -> dict[str, Any]:
    from fabqueue.store import models_pickup

    prefs = getattr(models_pickup, "NotificationPrefs", None)
    row = db.get(prefs, user.id) if prefs is not None else None
    return {"email": user.email,
            "channels": list(getattr(row, "apprise_urls", None) or []),
            "events": list(getattr(row, "events", None) or [])}


def export_archive(db: Session, files: Any, user: User, locale: str) -> bytes:
    """One zip: ``account.json``, ``jobs.json`` (with history), ``batches.json`` (their
    classes with the pupils), ``notifications.json``, and ``files/`` (uploads still kept)."""
    from fabqueue.web.pupils import batch_names_visible

    jobs = list(db.scalars(select(Job).where(Job.owner_id == user.id).order_by(Job.id)))
    history = _history(db, [j.id for j in jobs])
    account = {**user_out(user), "created_at": iso(user.created_at),
               "last_sign_in": iso(user.last_seen_at)}
    jobs_out = [{**job_out(j, locale, names=True), "history": history[j.id]} for j in jobs]
    batches = []
    for b in db.scalars(select(Batch).where(Batch.teacher_id == user.id).order_by(Batch.id)):
        names = batch_names_visible(user, b)
        pupils: dict[str, Any] = {}
        for j in b.jobs:
            p = pupils.setdefault(j.pupil or f"#{j.id}", {
                "pseudonym": j.pupil, "name": j.student_name if names else None, "jobs": []})
            p["jobs"].append(j.id)
        batches.append({"id": b.id, "class_name": b.class_name, "site": b.site_id,
                        "created_at": iso(b.created_at), "ends_on": b.ends_on and
                        b.ends_on.isoformat(), "basis_confirmed": b.basis_confirmed,
                        "pupils": list(pupils.values())})
    notes = [{"at": iso(n.at), "kind": n.kind, "text": n.text, "params": n.params,
              "job": n.job_id, "read": n.read}
             for n in db.scalars(select(Notification).where(Notification.user_id == user.id)
                                 .order_by(Notification.id))]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        def put(name: str, data: Any) -> None:
            zf.writestr(name, json.dumps(data, ensure_ascii=False, indent=2, default=str))

        put("account.json", account)
        put("jobs.json", jobs_out)
        put("batches.json", batches)
        put("notifications.json", {"settings": _notification_settings(db, user),
                                   "messages": notes})
        for j in jobs:
            if j.files_purged_at is not None or not files.exists(j.file_sha256):
                continue
            # a user's file name never becomes a path: only its last part, after the id
            safe = PurePosixPath(j.file_name.replace("\\", "/")).name or "file"
            zf.write(files.path(j.file_sha256), f"files/{j.id}-{safe}")
    return buf.getvalue()


@router.get("/me/export", responses={200: {"content": {"application/zip": {}}}})
def _handle_export(request: Request, user: User = Depends(current_user),
                   db: Session = Depends(get_db, scope="function")) -> Response:
    data = export_archive(db, request.app.state.files, user, request_locale(request, user))
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    return Response(data, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="fabqueue-my-data-{stamp}.zip"',
        "Cache-Control": "no-store"})


def _last_admin(db: Session, user: User) -> bool:
    if user.role != Role.ADMIN:
        return False
    others = db.scalar(select(func.count()).select_from(User).where(
        User.role == Role.ADMIN.value, User.id != user.id, User.erased_at.is_(None),
        User.disabled.is_(False)))
    return not others


def erase(request: Request, db: Session, target: User, actor: User) -> dict[str, Any]:
    if target.erased_at is not None:
        raise ApiError(404, "There is no user {id}.", id=target.id)
    if _last_admin(db, target):
        raise ApiError(409, "This is the last administrator: make another one first.")
    counts = erase_user(db, request.app.state.files, target, actor_id=actor.id,
                        now=datetime.now(UTC))
    db.commit()
    return {"erased": target.id, "role": target.role, **counts}


@router.delete("/me")
async def _handle_erase_me(body: EraseMe, request: Request,
                           user: User = Depends(current_user),
                           db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    if not await current_password_ok_async(request, user, body.password):
        raise ApiError(403, "Give your current password to erase your account.")
    out = erase(request, db, user, user)
    if "session" in request.scope:
        request.session.clear()
    return out


@router.delete("/users/{user_id}")
def _handle_erase_user(user_id: IdPath, request: Request, user: User = Depends(admin_user),
                       db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    target = db.get(User, user_id)
    if target is None:
        raise ApiError(404, "There is no user {id}.", id=user_id)
    if target.id == user.id:  # one's own account only with one's password
        raise ApiError(409, "Erase your own account on your account page, with your "
                            "password.")
    return erase(request, db, target, user)


@router.delete("/batches/{batch_id}/pupils/{pupil}")
def _handle_erase_pupil(batch_id: IdPath, pupil: str, request: Request,
                        user: User = Depends(current_user),
                        db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    batch = db.get(Batch, batch_id)
    if batch is None:
        raise ApiError(404, "There is no class batch {id}.", id=batch_id)
    if user.role != Role.ADMIN and batch.teacher_id != user.id:
        raise ApiError(403, "Only the class's teacher can erase a pupil.")
    if not db.scalar(select(func.count()).select_from(Job).where(
            Job.batch_id == batch.id, Job.pupil == pupil[:20])):
        raise ApiError(404, "There is no pupil {pupil} in this class.", pupil=pupil[:20])
    counts = erase_pupil(db, request.app.state.files, batch, pupil[:20], actor_id=user.id,
                         now=datetime.now(UTC))
    db.commit()
    return {"batch": batch.id, "pupil": pupil[:20], **counts}
