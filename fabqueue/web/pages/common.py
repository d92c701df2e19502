"""What every page module shares: sign-in, sign-out, language, and small helpers."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from fabqueue.core.access import is_staff
from fabqueue.i18n import LOCALES, gettext
from fabqueue.store.models import User
from fabqueue.store.users import revoke_sign_ins
from fabqueue.web.deps import ApiError, get_db, request_locale, start_session
from fabqueue.web.pages.render import render
from fabqueue.web.signin import Throttled, sign_in

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


@router.get("/favicon.ico")
def favicon() -> Response:
    """Browsers ask for /favicon.ico whatever the page links; the icon is an SVG."""
    return RedirectResponse("/static/favicon.svg", status_code=301)


@router.get("/login")
def login_page(request: Request) -> Response:
    return render(request, "login.html")


@router.post("/login")
async def login(request: Request, username: str = Form(...), password: str = Form(...),
                csrf_token: str = Form("")) -> Response:
    if not form_csrf_ok(request, csrf_token):
        return render(request, "login.html", status_code=403, error="csrf")
    try:
        user = await sign_in(request, username, password, request.session.get("locale"))
    except Throttled as exc:
        page = render(request, "login.html", status_code=429, error="throttled",
                      username=username, seconds=exc.params["seconds"])
        page.headers.update(exc.headers or {})
        return page
    if user is None:
        return render(request, "login.html", status_code=401, error="credentials",
                      username=username)
    request.session.clear()
    start_session(request, user)
    from fabqueue.web.pages.landing import start_page

    return redirect(start_page(user.role))


@router.post("/logout")
def logout(request: Request, csrf_token: str = Form(""),
           db: Session = Depends(get_db, scope="function")) -> Response:
    if form_csrf_ok(request, csrf_token):
        # a copy of this cookie must not outlive the sign-out: revoke every sign-in of the
        # user (their other browsers and tokens too: simple, and what "sign out" should mean
        # on a shared computer)
        uid = request.session.get("uid")
        user = db.get(User, uid) if isinstance(uid, int) else None
        if user is not None and request.session.get("tv", 0) == (user.token_version or 0):
            revoke_sign_ins(user)
        request.session.clear()
        return committed_redirect(db, "/login")
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
