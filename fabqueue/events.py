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

JOB_STATUS = "job:status"
JOB_PROGRESS = "job:progress"
JOB_ANALYSED = "job:analysed"
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
    def _publish(topic: str, data: dict[str, Any]) -> None:
        redis.publish(CHANNEL, json.dumps({"topic": topic, "data": data}, default=str))

    return _publish
