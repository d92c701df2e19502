"""Request dependencies: database session, the signed-in user, locale, errors in words."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import OAuth2PasswordBearer
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import inspect
from sqlalchemy.orm import Session

from fabqueue.core.access import Role, is_staff
from fabqueue.i18n import gettext, negotiate
from fabqueue.store.models import User

TOKEN_MAX_AGE_S = 30 * 24 * 3600
TOKEN_SALT = "fabqueue-api-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/auth/token", auto_error=False)


def get_db(request: Request) -> Iterator[Session]:
    """One session per request: committed when the handler returns, rolled back on error."""
    with request.app.state.db.session() as session:
        yield session


def serializer(request: Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(request.app.state.secret, salt=TOKEN_SALT)


def issue_token(request: Request, user: User) -> str:
    return serializer(request).dumps({"uid": user.id, "v": user.token_version or 0})


def start_session(request: Request, user: User) -> None:
    """The session cookie of a page sign-in: the user and their token version."""
    request.session["uid"] = user.id
    request.session["tv"] = user.token_version or 0


def request_locale(request: Request, user: User | None = None) -> str:
    if user is not None:
        # When a handler raised, get_db rolled back (expiring the user) and closed the
        # session before the error handler runs: read the locale kept at sign-in instead of
        # touching the expired row (that raised DetachedInstanceError and turned every 4xx
        # into a 500).
        preferred = inspect(user).dict.get("locale") or getattr(request.state, "user_locale",
                                                                 None)
        if preferred:
            return str(preferred)
    chosen = request.session.get("locale") if "session" in request.scope else None
    return chosen or negotiate(request.headers.get("accept-language"))


class ApiError(HTTPException):
    """An error a person reads: an English msgid translated into the caller's language."""

    def __init__(self, status_code: int, message: str, /, **params: Any) -> None:
        super().__init__(status_code=status_code, detail=message)
        self.message = message
        self.params = params

    def render(self, locale: str) -> str:
        text = gettext(locale, self.message)
        # without parameters the message may be plain text quoting the caller's input
        # (e.g. ``str(exc)`` of a validation error with a "{" in a site id): not a template
        return text.format(**self.params) if self.params else text


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return token


async def check_csrf(request: Request) -> None:
    """Cookie-authenticated changes need the session's token (header or form field)."""
    if request.method in SAFE_METHODS:
        return
    expected = request.session.get("csrf")
    sent = request.headers.get("x-csrf-token")
    if sent is None and request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        form = await request.form()
        value = form.get("csrf_token")
        sent = value if isinstance(value, str) else None
    # Never the query string: URLs end up in logs, history and Referer headers.
    if not expected or not sent or not secrets.compare_digest(expected, sent):
        raise ApiError(403, "The form has expired or did not come from FabQueue. "
                            "Reload the page and try again.")


def _signed_in(
    request: Request,
    token: str | None = Depends(oauth2_scheme),
    db: Session = Depends(get_db, scope="function"),
) -> tuple[User | None, bool]:
    """The user and whether they came by session cookie. A plain ``def``: FastAPI runs it in
    a thread, so waiting for a database connection never blocks the event loop."""
    uid: int | None = None
    version: object = None
    by_cookie = False
    if token:
        try:
            payload = serializer(request).loads(token, max_age=TOKEN_MAX_AGE_S)
            uid, version = int(payload["uid"]), payload.get("v", 0)
        except (BadSignature, SignatureExpired, KeyError, ValueError, TypeError,
                AttributeError):
            raise ApiError(401, "Your sign-in has expired. Sign in again.") from None
    elif "session" in request.scope and request.session.get("uid"):
        try:
            uid = int(request.session["uid"])
        except (TypeError, ValueError):
            uid = None
        version = request.session.get("tv", 0)
        by_cookie = True
    if uid is None:
        return None, False
    user = db.get(User, uid) if 0 < uid < 2**63 else None
    if user is None or user.disabled:
        if "session" in request.scope:
            request.session.clear()
        raise ApiError(401, "This account is disabled or no longer exists.")
    if version != (user.token_version or 0):
        # signed out, password changed or disabled since: this token or cookie is revoked
        if by_cookie:
            request.session.clear()
        raise ApiError(401, "Your sign-in has expired. Sign in again.")
    request.state.user = user
    request.state.user_locale = user.locale
    return user, by_cookie


async def optional_user(
    request: Request, found: tuple[User | None, bool] = Depends(_signed_in)
) -> User | None:
    user, by_cookie = found
    if by_cookie:
        await check_csrf(request)  # reads the form: async, but touches no database
    return user


def form_upload_user(found: tuple[User | None, bool] = Depends(_signed_in)) -> User | None:
    """For a multipart form whose handler checks the token in its form field itself (it can't
    be read before the upload is parsed; the handler deletes a refused upload)."""
    return found[0]


async def current_user(user: User | None = Depends(optional_user)) -> User:
    if user is None:
        raise ApiError(401, "Sign in first.")
    return user


async def staff_user(user: User = Depends(current_user)) -> User:
    if not is_staff(user.role):
        raise ApiError(403, "Only lab staff can do this.")
    return user


async def admin_user(user: User = Depends(current_user)) -> User:
    if user.role != Role.ADMIN:
        raise ApiError(403, "Only an administrator can do this.")
    return user
