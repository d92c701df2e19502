"""Checking a name and password, for the token endpoint and the sign-in page alike:
throttled (``throttle.LoginThrottle``) and hashed in the bounded Argon2 pool."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import Request

from fabqueue.store.models import User
from fabqueue.store.users import authenticate, verify_password
from fabqueue.web.deps import ApiError
from fabqueue.web.throttle import (
    LoginThrottle,
    client_address,
    in_hashing_pool,
    retry_after_header,
)

THROTTLED = "Too many wrong passwords. Try again in {seconds} seconds."


class Throttled(ApiError):
    def __init__(self, seconds: float) -> None:
        headers = retry_after_header(seconds)
        super().__init__(429, THROTTLED, seconds=headers["Retry-After"])
        self.headers = headers


def throttle_of(request: Request) -> LoginThrottle:
    throttle = getattr(request.app.state, "login_throttle", None)
    if throttle is None:
        settings = request.app.state.settings
        throttle = request.app.state.login_throttle = LoginThrottle(
            max_s=settings.login_backoff_max_s)
    return throttle


def _check(db: object, name: str, password: str, locale: str | None) -> User | None:
    with db.session() as s:  # type: ignore[attr-defined]
        user = authenticate(s, name, password)
        if user is None:
            return None
        if user.locale is None and locale:
            user.locale = locale
        # the inactive-account purge counts from here (issue 21)
        user.last_seen_at = datetime.now(UTC)
        s.flush()
        s.expunge(user)  # a plain record for the caller: id, token version, locale
        return user


async def sign_in(request: Request, name: str, password: str,
                  locale: str | None = None) -> User | None:
    """The user, or None for a wrong name or password; raises ``Throttled`` (429)."""
    throttle = throttle_of(request)
    address = client_address(request.client)
    wait = throttle.attempt(name, address)  # counted now: a burst can't all slip through
    if wait > 0:
        raise Throttled(wait)
    user = await in_hashing_pool(_check, request.app.state.db, name, password, locale)
    if user is not None:
        throttle.succeeded(name, address)
    return user


def _current_password_tried(request: Request, user: User, ok: bool | None) -> None:
    if ok:
        throttle_of(request).succeeded(user.name, client_address(request.client))


def reserve_current_password(request: Request, user: User) -> None:
    """Before checking a signed-in person's current password (a password change, an
    account change): the same throttle and budget as signing in as them, since a stolen
    session could otherwise guess the password here without limit. Raises ``Throttled``."""
    wait = throttle_of(request).attempt(user.name, client_address(request.client))
    if wait > 0:
        raise Throttled(wait)


def current_password_ok(request: Request, user: User, password: str) -> bool:
    """``verify_password`` behind the throttle, in the caller's thread (sync handlers)."""
    reserve_current_password(request, user)
    ok = verify_password(user, password)
    _current_password_tried(request, user, ok)
    return ok


async def current_password_ok_async(request: Request, user: User, password: str) -> bool:
    """The same in the bounded hashing pool (async handlers)."""
    reserve_current_password(request, user)
    ok = await in_hashing_pool(verify_password, user, password)
    _current_password_tried(request, user, ok)
    return ok
