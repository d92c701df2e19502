"""``/api/users``: accounts (admin), and each user's own language and e-mail."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabqueue.core.access import Role
from fabqueue.i18n import LOCALES
from fabqueue.store.models import User
from fabqueue.store.users import (
    AccountError,
    check_email,
    check_membership,
    create_user,
    revoke_sign_ins,
    set_password,
)
from fabqueue.web.api.auth import user_out
from fabqueue.web.deps import ApiError, admin_user, current_user, get_db
from fabqueue.web.params import IdPath
from fabqueue.web.signin import current_password_ok

router = APIRouter(prefix="/api/users", tags=["users"])


class UserIn(BaseModel):
    name: str = Field(..., min_length=1, max_length=100)
    password: str = Field(..., min_length=8, max_length=200)
    role: Role
    site: str | None = None
    email: str | None = None


class UserPatch(BaseModel):
    role: Role | None = None
    site: str | None = None
    email: str | None = None
    disabled: bool | None = None
    password: str | None = Field(None, min_length=8, max_length=200)
    current_password: str | None = Field(None, max_length=200,
                                         description="needed to change one's own password")
    locale: str | None = None
    quota_g_month: float | None = Field(None, ge=0)


@router.get("")
def _handle_list(user: User = Depends(admin_user),
                 db: Session = Depends(get_db, scope="function")) -> list[dict[str, Any]]:
    return [user_out(u) for u in db.scalars(select(User).order_by(User.name))]


@router.post("", status_code=201)
def _handle_create(body: UserIn, user: User = Depends(admin_user),
                   db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    try:
        new = create_user(db, body.name, body.password, body.role.value, body.site, body.email)
    except AccountError as exc:
        raise ApiError(422, str(exc)) from None
    return user_out(new)


def _keep_an_admin(db: Session, target: User, body: UserPatch) -> None:
    """FabQueue always keeps one active administrator: nobody else can add one back."""
    demoted = body.role is not None and body.role != Role.ADMIN
    if target.role != Role.ADMIN or target.disabled or not (demoted or body.disabled):
        return
    # the other active admins, rows locked (PostgreSQL) so that two admins demoting each
    # other at once can't both see the other one still there
    others = db.scalars(select(User.id).where(
        User.role == Role.ADMIN.value, User.disabled.is_(False), User.id != target.id)
        .with_for_update()).all()
    if not others:
        raise ApiError(409, "{name} is the last active administrator: make another user an "
                            "administrator first.", name=target.name)


@router.patch("/{user_id}")
def _handle_patch(user_id: IdPath, body: UserPatch, request: Request,
                  user: User = Depends(current_user),
                  db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    target = db.get(User, user_id)
    if target is None:
        raise ApiError(404, "There is no user {id}.", id=user_id)
    admin = user.role == Role.ADMIN
    own = target.id == user.id
    own_fields = {"locale", "email", "password", "current_password"}
    asked = {k for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    if not admin and (not own or asked - own_fields):
        raise ApiError(403, "Only an administrator can do this.")
    if own and body.disabled:
        raise ApiError(409, "You can't disable your own account.")
    if body.password and own and not (
            body.current_password and current_password_ok(request, target,
                                                          body.current_password)):
        raise ApiError(403, "Give your current password to set a new one.")
    _keep_an_admin(db, target, body)
    if body.locale is not None:
        if body.locale not in LOCALES:
            raise ApiError(422, "Choose one of the languages: {choices}.",
                           choices=", ".join(LOCALES))
        target.locale = body.locale
    try:
        if body.role is not None or body.site is not None:
            site = body.site if body.site is not None else target.site_id
            role, site = check_membership(db, (body.role or target.role), site)
            target.role, target.site_id = role.value, site
        if "email" in body.model_fields_set:
            target.email = check_email(body.email)
        if body.password:
            set_password(target, body.password)
    except AccountError as exc:
        raise ApiError(422, str(exc)) from None
    if body.quota_g_month is not None:
        target.quota_g_month = body.quota_g_month
    if body.disabled is not None:
        if body.disabled and not target.disabled:
            revoke_sign_ins(target)
        target.disabled = body.disabled
    return user_out(target)
