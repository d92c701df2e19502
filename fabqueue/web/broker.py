"""One Redis subscription per web process, fanned out to every SSE client's queue."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import redis.asyncio as aioredis

from fabqueue.events import channel, redis_db

log = logging.getLogger(__name__)


class Broker:
    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.clients: set[asyncio.Queue[dict[str, Any]]] = set()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests run one per client): start over
            self._loop, self._task = loop, None
            self.clients = set()
        self.clients.add(q)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._listen())
        return q

    def unsubscribe(self, q: asyncio.Queue[dict[str, Any]]) -> None:
        self.clients.discard(q)

    async def _listen(self) -> None:
        while self.clients:
            conn = aioredis.Redis.from_url(self.redis_url)
            try:
                async with conn.pubsub() as ps:
                    await ps.subscribe(channel(redis_db(conn)))
                    async for msg in ps.listen():
                        if msg.get("type") != "message":
                            continue
                        try:
                            event = json.loads(msg["data"])
                        except (ValueError, TypeError):
                            continue
                        for q in list(self.clients):
                            with contextlib.suppress(asyncio.QueueFull):
                                q.put_nowait(event)
                        if not self.clients:
                            return
            except (aioredis.ConnectionError, OSError) as exc:
                log.warning("event subscription lost (%s); retrying", exc)
                await asyncio.sleep(1)
            finally:
                # bounded: a close that hangs must not keep a cancelled task alive
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(conn.aclose(), timeout=1.0)

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
