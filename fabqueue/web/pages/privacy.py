"""``/privacy``: what FabQueue stores, why, for how long (this installation's settings), and
how to take it away or erase it. Open to everyone, signed in or not: a school's data
protection officer reads it before any account exists."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from fabqueue.store.models import User
from fabqueue.web.api.privacy import erase
from fabqueue.web.deps import get_db, optional_user
from fabqueue.web.pages.common import redirect, require_csrf
from fabqueue.web.pages.render import render
from fabqueue.web.signin import current_password_ok_async

router = APIRouter(include_in_schema=False)


@router.get("/privacy")
def privacy_page(request: Request, user: User | None = Depends(optional_user)) -> Response:
    s = request.app.state.settings
    return render(request, "privacy.html", user=user, files_days=s.retain_files_days,
                  names_days=s.retain_pupil_names_days,
                  inactive_days=s.retain_inactive_accounts_days, notice_days=30)


@router.post("/account/erase")
async def erase_account(request: Request, password: str = Form(""), csrf_token: str = Form(""),
                        user: User | None = Depends(optional_user),
                        db: Session = Depends(get_db, scope="function")) -> Response:
    """The account page's erasure: the current password, then the same erasure as
    ``DELETE /api/me``; the browser is signed out and lands on the privacy page."""
    if user is None:
        return redirect("/login")
    require_csrf(request, csrf_token)
    if not await current_password_ok_async(request, user, password):
        return render(request, "account.html", status_code=403, user=user, error="erase")
    erase(request, db, user, user)
    request.session.clear()
    return redirect("/privacy")
