"""What one person may keep in the file store: a refused upload leaves nothing behind, and a
per-user limit (``FABQUEUE_MAX_STORAGE_PER_USER_BYTES``) stops a disk-filling loop."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from fabqueue.queue.context import Context
from fabqueue.store.models import Job, User
from fabqueue.web.deps import ApiError

log = logging.getLogger(__name__)


def stored_bytes(db: Session, user: User) -> int:
    """The bytes of the user's uploads the store keeps (FabQueue deletes none yet: all)."""
    return int(db.scalar(select(func.coalesce(func.sum(Job.size_bytes), 0))
                         .where(Job.owner_id == user.id)) or 0)


def check_quota(ctx: Context, db: Session, user: User, adding: int) -> None:
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
    """Around taking in uploaded files: on any refusal, roll back and remove them."""
    try:
        yield
    except BaseException:
        db.rollback()
        discard(ctx, db, list(shas))
        raise
