"""Request bodies: who may send one, and how big (pure ASGI, before anything reads a byte).

- Only a signed-in caller (a bearer token with a valid signature, or a session cookie with a
  user) may send a body, except to the few forms used to sign in. FastAPI reads a body
  before it runs the dependencies that authenticate, so this is checked here.
- JSON and form bodies: ``max_body_bytes`` (a small limit); multipart uploads: the upload
  limit for as many files as a class batch may hold (each file is capped as it streams).
  A declared ``Content-Length`` over the limit is refused at once; a chunked body is counted
  as it arrives and stopped the moment it passes the limit.
"""

from __future__ import annotations

import json
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from fabqueue.config import Settings
from fabqueue.core.findings import N_
from fabqueue.i18n import gettext, negotiate
from fabqueue.web.deps import TOKEN_MAX_AGE_S, TOKEN_SALT, ApiError

ANONYMOUS_BODIES = frozenset({"/api/auth/token", "/login", "/lang", "/logout"})
TOO_LARGE = N_("The request is larger than the limit of {limit} KB.")
SIGN_IN = N_("Sign in first.")
MALFORMED = N_("The request is malformed.")


class BodyTooLarge(ApiError):
    """An HTTPException: FastAPI lets it through its body parsing as a 413 (anything else
    raised while reading a body becomes a 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, TOO_LARGE, limit=max(1, limit // 1024))


def _header(scope: dict[str, Any], name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value)
    return None


class BodyLimit:
    def __init__(self, app: Any, settings: Settings, secret: str) -> None:
        self.app = app
        self.small = settings.max_body_bytes
        self.upload = settings.max_upload_bytes * max(1, settings.max_batch_files) + (1 << 20)
        self.tokens = URLSafeTimedSerializer(secret, salt=TOKEN_SALT)

    def _signed_in(self, scope: dict[str, Any]) -> bool:
        session = scope.get("session") or {}
        if session.get("uid"):
            return True
        auth = (_header(scope, b"authorization") or b"").decode("latin-1")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        try:
            self.tokens.loads(token.strip(), max_age=TOKEN_MAX_AGE_S)
        except (BadSignature, ValueError, TypeError):
            return False
        return True

    async def _answer(self, scope: dict[str, Any], send: Any, status: int, message: str,
                      **params: Any) -> None:
        locale = negotiate((_header(scope, b"accept-language") or b"").decode("latin-1"))
        if status == 401 and not scope["path"].startswith("/api"):
            await send({"type": "http.response.start", "status": 303,
                        "headers": [(b"location", b"/login"), (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        body = json.dumps({"detail": gettext(locale, message).format(**params)}).encode()
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        chunked = b"chunked" in (_header(scope, b"transfer-encoding") or b"").lower()
        try:
            length = int(declared) if declared is not None else None
        except ValueError:
            await self._answer(scope, send, 400, MALFORMED)
            return
        if not chunked and not length:
            await self.app(scope, receive, send)  # no body to read
            return
        if scope["path"] not in ANONYMOUS_BODIES and not self._signed_in(scope):
            await self._answer(scope, send, 401, SIGN_IN)
            return
        ctype = (_header(scope, b"content-type") or b"").lower()
        limit = self.upload if ctype.startswith(b"multipart/") else self.small
        if length is not None and length > limit:
            await self._answer(scope, send, 413, TOO_LARGE, limit=max(1, limit // 1024))
            return
        seen = 0

        async def counted() -> dict[str, Any]:
            nonlocal seen
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        started = False

        async def watch(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watch)
        except BodyTooLarge:
            if started:
                raise
            await self._answer(scope, send, 413, TOO_LARGE, limit=max(1, limit // 1024))
