"""The FastAPI application factory: API routers, pages, static files, error handlers."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from fabqueue import __version__
from fabqueue.i18n import gettext
from fabqueue.queue.context import Context
from fabqueue.store.files import TooLarge
from fabqueue.web.bodylimit import BodyLimit
from fabqueue.web.deps import ApiError, request_locale
from fabqueue.web.headers import SecurityHeaders
from fabqueue.web.storage import UploadScope
from fabqueue.web.uploads import UploadError

log = logging.getLogger(__name__)
STATIC = Path(__file__).with_name("static")


class ServerTiming:
    """Adds ``Server-Timing: app;dur=<ms>``: the time the app spent on a request, so load tests
    and browsers can tell server time from time spent queueing on the client's side."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                ms = (time.perf_counter() - started) * 1000
                headers = list(message.get("headers", []))
                headers.append((b"server-timing", f"app;dur={ms:.1f}".encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, timed_send)


class ConcurrencyLimit:
    """At most ``limit`` requests are worked on at once; the others wait their turn here, in
    order, as they would for a free worker process. Twenty requests sharing one interpreter's
    lock all at once each take twenty times as long; a few at a time finish sooner and the
    queue moves just as fast. Event streams and uploads (long-lived, mostly waiting on the
    network) don't take a turn."""

    def __init__(self, app: Any, limit: int = 2) -> None:
        self.app = app
        self.limit = max(1, limit)
        # one per event loop (a semaphore belongs to the loop it is first used on)
        self._semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop,
                                                    asyncio.Semaphore] = (
            weakref.WeakKeyDictionary())

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        sem = self._semaphores.get(loop)
        if sem is None:
            sem = self._semaphores[loop] = asyncio.Semaphore(self.limit)
        return sem

    @staticmethod
    def _exempt(scope: dict[str, Any]) -> bool:
        if scope["path"] in ("/api/events", "/api/auth/token", "/login") or scope[
                "path"].startswith("/static/"):
            return True  # sign-ins: their Argon2 work is bounded by its own thread pool
        for name, value in scope.get("headers", []):
            if name == b"content-type" and value.startswith(b"multipart/"):
                return True
        return False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self._exempt(scope):
            await self.app(scope, receive, send)
            return
        async with self._semaphore():
            await self.app(scope, receive, send)


def create_app(ctx: Context) -> FastAPI:
    app = FastAPI(
        title="FabQueue",
        version=__version__,
        description="Job queue for the 3D printers and laser cutters of a makerspace.",
    )
    app.state.ctx = ctx
    app.state.settings = ctx.settings
    app.state.db = ctx.db
    app.state.files = ctx.files
    app.state.secret = ctx.settings.effective_secret()
    app.add_middleware(ServerTiming)
    # nothing kept from a refused request: its new upload blobs go unless a job holds them
    app.add_middleware(UploadScope, ctx=ctx)
    app.add_middleware(ConcurrencyLimit, limit=ctx.settings.web_concurrency)
    # inside the session middleware (it needs the session), before any handler reads a body
    app.add_middleware(BodyLimit, settings=ctx.settings, secret=app.state.secret)
    https = ctx.settings.session_https_only or (ctx.settings.public_url or "").startswith(
        "https://")
    app.add_middleware(SessionMiddleware, secret_key=app.state.secret, session_cookie="fabqueue",
                       same_site="lax", https_only=https, max_age=14 * 24 * 3600)
    app.add_middleware(SecurityHeaders)  # outermost: error responses get the headers too

    from fabqueue.web.api import (
        auth,
        batches,
        colours,
        devices,
        events,
        jobs,
        materials,
        queue,
        sites,
        spools,
        users,
    )

    for module in (auth, jobs, colours, batches, devices, queue, sites, materials, users, events,
                   spools):
        app.include_router(module.router)
    from fabqueue.web.api import privacy  # export and erasure (issue 21)
    from fabqueue.web.pages import privacy as privacy_page

    app.include_router(privacy.router)
    app.include_router(privacy_page.router)
    from fabqueue.web.api import trainings  # trainings, maintenance, out of order (issue 17)

    app.include_router(trainings.router)
    from fabqueue import notify
    from fabqueue.web.api import pickup  # pickup, labels, notification choices (issue 18)

    notify.configure(ctx.settings)
    app.include_router(pickup.router)
    from fabqueue.web.pages import pickup as pickup_pages

    app.include_router(pickup_pages.router)
    from fabqueue.web.pages import routes as pages

    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/health", tags=["meta"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    _install_error_handlers(app)
    install_last_resort(app)
    _install_mailer(app)
    return app


def _install_mailer(app: FastAPI) -> None:
    """E-mail owners about their jobs while the app runs (only when SMTP is configured)."""
    from fabqueue.web import notify

    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        task = notify.start(app)
        try:
            async with inner(a) as state:
                yield state
        finally:
            await notify.stop(task)

    app.router.lifespan_context = lifespan


def install_last_resort(app: FastAPI) -> None:
    """Any exception nothing else handled: logged with its traceback, answered as JSON (still
    a bug: the tests count every 500)."""

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s", request.method, request.url.path,
                  exc_info=exc)
        return JSONResponse({"detail": gettext(request_locale(request), "Something went wrong "
                                               "on the server. The error was logged.")}, 500)


def _install_error_handlers(app: FastAPI) -> None:
    def locale(request: Request) -> str:
        return request_locale(request, getattr(request.state, "user", None))

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = dict(exc.headers or {})  # e.g. Retry-After of a throttled sign-in
        if exc.status_code == 401:
            headers["WWW-Authenticate"] = "Bearer"
        body = {"detail": exc.render(locale(request))}
        if getattr(exc, "code", None):  # a reason code scripts can test (training_required …)
            body["code"] = exc.code  # type: ignore[attr-defined]
        return JSONResponse(body, exc.status_code, headers=headers)

    @app.exception_handler(TooLarge)
    async def _too_large(request: Request, exc: TooLarge) -> JSONResponse:
        msg = gettext(locale(request), "The file is larger than the limit of {limit} MB. "
                                       "Make it smaller or ask the lab staff.")
        return JSONResponse({"detail": msg.format(limit=exc.limit // (1024 * 1024))}, 413)

    @app.exception_handler(UploadError)
    async def _upload_error(request: Request, exc: UploadError) -> JSONResponse:
        return JSONResponse({"detail": gettext(locale(request), exc.message)}, 400)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            problems.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return JSONResponse({"detail": "; ".join(problems),
                             "errors": jsonable_encoder(exc.errors())}, 422)
