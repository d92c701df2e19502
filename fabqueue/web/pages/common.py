"""What every page module shares: sign-in, sign-out, language, and small helpers."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from fabqueue.core.access import is_staff
from fabqueue.i18n import LOCALES, gettext
from fabqueue.store.models import User
from fabqueue.store.users import authenticate
from fabqueue.web.deps import ApiError, get_db, request_locale
from fabqueue.web.pages.render import render

router = APIRouter(include_in_schema=False)

CSRF_MESSAGE = ("The form has expired or did not come from FabQueue. "
                "Reload the page and try again.")


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def committed_redirect(db: Session, url: str) -> RedirectResponse:
    """Commit before answering: the browser follows the redirect at once, and the session
    dependency would otherwise commit only after the response went out (a stale next page
    while the workers keep SQLite busy)."""
    db.commit()
    return redirect(url)


def form_csrf_ok(request: Request, sent: str | None) -> bool:
    expected = request.session.get("csrf")
    return bool(expected and sent and secrets.compare_digest(expected, sent))


def require_csrf(request: Request, sent: str | None) -> None:
    if not form_csrf_ok(request, sent):
        raise ApiError(403, CSRF_MESSAGE)


def error_page(request: Request, user: User | None, status: int, message: str,
               **params: object) -> Response:
    """An error in words, in the reader's language (``message`` is an English msgid)."""
    text = gettext(request_locale(request, user), message).format(**params)
    return render(request, "error.html", status_code=status, user=user, message=text)


def forbidden_unless_staff(request: Request, user: User) -> Response | None:
    if not is_staff(user.role):
        return error_page(request, user, 403, "Only lab staff can do this.")
    return None


def safe_next(url: str) -> str:
    return url if url.startswith("/") and not url.startswith("//") else "/"


@router.get("/login")
def login_page(request: Request) -> Response:
    return render(request, "login.html")


@router.post("/login")
def login(request: Request, username: str = Form(...), password: str = Form(...),
          csrf_token: str = Form(""), db: Session = Depends(get_db, scope="function")) -> Response:
    if not form_csrf_ok(request, csrf_token):
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
    return committed_redirect(db, "/")


@router.post("/logout")
def logout(request: Request, csrf_token: str = Form("")) -> Response:
    if form_csrf_ok(request, csrf_token):
        request.session.clear()
    return redirect("/login")


@router.post("/lang")
def set_language(request: Request, locale: str = Form(...), csrf_token: str = Form(""),
                 next: str = Form("/"),
                 db: Session = Depends(get_db, scope="function")) -> Response:
    """The language switch: kept in the session, and on the account when signed in."""
    if locale in LOCALES and form_csrf_ok(request, csrf_token):
        request.session["locale"] = locale
        uid = request.session.get("uid")
        if uid and (user := db.get(User, uid)) is not None:
            user.locale = locale
    return committed_redirect(db, safe_next(next))
