"""What a worker process needs: settings, database, file store and Redis, built once."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import redis

from fabqueue import events
from fabqueue.config import Settings
from fabqueue.queue.embedded import socket_path_for
from fabqueue.store.db import Database
from fabqueue.store.files import FileStore


@dataclass
class Context:
    settings: Settings

    @cached_property
    def db(self) -> Database:
        return Database(self.settings.sqlalchemy_url)

    @cached_property
    def files(self) -> FileStore:
        return FileStore(self.settings.files_path)

    @cached_property
    def redis_url(self) -> str:
        return self.settings.redis_url or f"unix://{socket_path_for(self.settings.data_path)}"

    @cached_property
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)

    def __post_init__(self) -> None:
        # job changes in this process become notifications in the same commit (notify's
        # outbox hook), with this process's quiet hours, language and SMTP settings
        from fabqueue import notify

        notify.configure(self.settings)

    def install_publisher(self) -> None:
        events.set_publisher(events.redis_publisher(self.redis))


_context: Context | None = None


def get_context() -> Context:
    """The process's context, from the environment (workers are started with it set)."""
    global _context
    if _context is None:
        _context = Context(Settings())
        _context.install_publisher()
    return _context


def set_context(ctx: Context | None) -> None:
    global _context
    _context = ctx
