"""``/api/auth``: bearer tokens for scripts and apps (OAuth2 password form), and who am I."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from fabqueue.store.models import User
from fabqueue.web.deps import ApiError, current_user, issue_token
from fabqueue.web.signin import sign_in

router = APIRouter(prefix="/api", tags=["auth"])


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"


@router.post("/auth/token", response_model=Token,
             responses={429: {"description": "too many wrong passwords: see Retry-After"}})
async def _handle_token(request: Request, form: OAuth2PasswordRequestForm = Depends()) -> Token:
    user = await sign_in(request, form.username, form.password)
    if user is None:
        raise ApiError(401, "Wrong user name or password.")
    return Token(access_token=issue_token(request, user))


def user_out(user: User) -> dict[str, Any]:
    return {"id": user.id, "name": user.name, "role": user.role, "site": user.site_id,
            "email": user.email, "locale": user.locale, "disabled": user.disabled,
            "quota_g_month": user.quota_g_month}


@router.get("/me")
def _handle_me(user: User = Depends(current_user)) -> dict[str, Any]:
    return user_out(user)
