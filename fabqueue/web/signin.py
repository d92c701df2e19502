"""Checking a name and password, for the token endpoint and the sign-in page alike:
throttled (``throttle.LoginThrottle``) and hashed in the bounded Argon2 pool."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import Request

from fabqueue.store.models import User
from fabqueue.store.users import authenticate
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
    wait = throttle.retry_after(name, address)
    if wait > 0:
        raise Throttled(wait)
    user = await in_hashing_pool(_check, request.app.state.db, name, password, locale)
    if user is None:
        throttle.failed(name, address)
    else:
        throttle.succeeded(name, address)
    return user
