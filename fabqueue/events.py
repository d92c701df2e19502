"""Events: ``"module:event"`` topics published for the web (Redis pub/sub → SSE).

The store publishes after a commit; the device workers publish live machine state. The
publisher is pluggable so the pure parts and tests can run without Redis.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

CHANNEL = "fabqueue:events"


def channel(db: int | None) -> str:
    """The pub/sub channel of the FabQueue using Redis database ``db``. Redis delivers
    pub/sub across database numbers, so two installations (or test passes) sharing one Redis
    server on different databases would otherwise see each other's events."""
    return CHANNEL if not db else f"{CHANNEL}:{db}"


def redis_db(client: Any) -> int:
    """The database number a redis-py client (sync or asyncio) talks to."""
    return int(client.connection_pool.connection_kwargs.get("db") or 0)

JOB_STATUS = "job:status"
JOB_PROGRESS = "job:progress"
JOB_ANALYSED = "job:analysed"
# a large model's picture, drawn after its verdict: open pages fetch the job again
JOB_THUMBNAIL = "job:thumbnail"
DEVICE_STATE = "device:state"
DEVICE_PROGRESS = "device:progress"
NOTIFY = "user:notify"

Publisher = Callable[[str, dict[str, Any]], None]
_publisher: Publisher | None = None


def set_publisher(publisher: Publisher | None) -> None:
    global _publisher
    _publisher = publisher


def publish(topic: str, data: dict[str, Any]) -> None:
    if _publisher is None:
        return
    try:
        _publisher(topic, data)
    except Exception:  # an event lost must never break the change that caused it
        log.exception("could not publish %s", topic)


def redis_publisher(redis: Any) -> Publisher:
    name = channel(redis_db(redis))

    def _publish(topic: str, data: dict[str, Any]) -> None:
        redis.publish(name, json.dumps({"topic": topic, "data": data}, default=str))

    return _publish
