"""What one person may keep in the file store: a refused upload leaves nothing behind, and a
per-user limit (``FABQUEUE_MAX_STORAGE_PER_USER_BYTES``) stops a disk-filling loop.

Nothing kept from a refused request, by one mechanism for every endpoint that takes files:
:class:`UploadScope` gives each request a list; whatever stores an upload's bytes notes each
new blob there (:func:`note_new`: the multipart parser, a class zip's unpacking); when the
request ends, the blobs no committed job refers to are removed. A refusal anywhere (a form
field too long after the file, a second file, a damaged zip member, the quota, the
material) rolls the database back, so its blobs go, whichever line refused.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import anyio
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from fabqueue.core.access import is_staff
from fabqueue.queue.context import Context
from fabqueue.store.models import Job, User
from fabqueue.web.deps import ApiError

log = logging.getLogger(__name__)


def stored_bytes(db: Session, user: User) -> int:
    """The bytes of the user's uploads the store keeps (a job whose files the retention
    purge removed no longer counts)."""
    return int(db.scalar(select(func.coalesce(func.sum(Job.size_bytes), 0))
                         .where(Job.owner_id == user.id, Job.files_purged_at.is_(None))) or 0)


def check_quota(ctx: Context, db: Session, user: User, adding: int) -> None:
    if is_staff(user.role):  # the lab's own staff and admins keep what the lab needs
        return
    limit = ctx.settings.max_storage_per_user_bytes
    if stored_bytes(db, user) + adding > limit:
        raise ApiError(413, "Your files take up more than the {limit} MB you may store. "
                            "Ask the lab staff to remove old jobs.",
                       limit=limit // (1024 * 1024))


def discard(ctx: Context, db: Session, shas: Iterable[str]) -> None:
    """Delete stored files no job refers to (content-addressed: another job's identical
    upload keeps the file)."""
    for sha in set(shas):
        used = db.scalar(select(func.count()).select_from(Job).where(or_(
            Job.file_sha256 == sha, Job.program_sha256 == sha, Job.thumbnail_sha256 == sha)))
        if not used:
            try:
                ctx.files.path(sha).unlink(missing_ok=True)
            except (OSError, ValueError):
                log.warning("could not remove refused upload %s", sha, exc_info=True)


@contextmanager
def refused_leaves_nothing(ctx: Context, db: Session, shas: Iterable[str]) -> Iterator[None]:
    """Around taking in uploaded files: on any refusal, roll back (the request's
    :class:`UploadScope` then removes the blobs no job refers to)."""
    try:
        yield
    except BaseException:
        db.rollback()
        raise


_new_blobs: ContextVar[list[str] | None] = ContextVar("fabqueue_new_blobs", default=None)


def note_new(sha: str, created: bool) -> None:
    """An upload's bytes were stored for this request; ``created``: they were not in the
    store before (the same bytes already there belong to someone else: never removed)."""
    blobs = _new_blobs.get()
    if created and blobs is not None:
        blobs.append(sha)


class UploadScope:
    """ASGI middleware: the request's new blobs are removed at its end unless a committed
    job refers to them (see the module's docstring)."""

    def __init__(self, app: Any, ctx: Context) -> None:
        self.app, self.ctx = app, ctx

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        blobs: list[str] = []
        token = _new_blobs.set(blobs)  # handlers (and their threads) share this list
        try:
            await self.app(scope, receive, send)
        finally:
            _new_blobs.reset(token)
            if blobs:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self._sweep, blobs)

    def _sweep(self, blobs: list[str]) -> None:
        try:
            with self.ctx.db.session() as db:
                discard(self.ctx, db, blobs)
        except Exception:  # never turn an answer already sent into an error
            log.warning("could not sweep a request's uploads %s", blobs, exc_info=True)
