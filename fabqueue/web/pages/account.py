"""The signed-in person's own account: changing the password (the current one is asked for,
as in the API; every other sign-in of the account is revoked, this browser stays in)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from fabqueue.store.models import User
from fabqueue.store.users import AccountError, set_password
from fabqueue.web.deps import get_db, optional_user, start_session
from fabqueue.web.pages.common import committed_redirect, redirect, require_csrf
from fabqueue.web.pages.render import render
from fabqueue.web.signin import current_password_ok_async
from fabqueue.web.throttle import in_hashing_pool

router = APIRouter(include_in_schema=False)


@router.get("/account")
def account_page(request: Request, user: User | None = Depends(optional_user)) -> Response:
    if user is None:
        return redirect("/login")
    return render(request, "account.html", user=user, changed=request.query_params.get("ok"))


@router.post("/account/password")
async def change_password(request: Request, current: str = Form(""), new: str = Form(""),
                          csrf_token: str = Form(""),
                          user: User | None = Depends(optional_user),
                          db: Session = Depends(get_db, scope="function")) -> Response:
    if user is None:
        return redirect("/login")
    require_csrf(request, csrf_token)
    if not await current_password_ok_async(request, user, current):  # 429 when throttled
        return render(request, "account.html", status_code=403, user=user, error="current")
    try:
        await in_hashing_pool(set_password, user, new)
    except AccountError:
        return render(request, "account.html", status_code=422, user=user, error="short")
    start_session(request, user)  # this browser keeps going with the new token version
    return committed_redirect(db, "/account?ok=1")
