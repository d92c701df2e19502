"""``/api/events``: live updates by Server-Sent Events (job status, progress, machines)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from sse_starlette.sse import EventSourceResponse

from fabqueue.core.access import Role
from fabqueue.store.models import User
from fabqueue.web.broker import Broker
from fabqueue.web.deps import current_user

router = APIRouter(prefix="/api", tags=["events"])


def may_see(user: dict[str, Any], event: dict[str, Any]) -> bool:
    data = event.get("data") or {}
    topic = str(event.get("topic", ""))
    if user["role"] == Role.ADMIN:
        return True
    if topic.startswith("device:"):
        return True
    if data.get("owner") == user["id"]:
        return True
    if user["role"] == Role.STAFF:
        return data.get("site") in (None, user["site"])
    if user["role"] == Role.TEACHER:
        return data.get("batch") is not None and data.get("teacher") == user["id"]
    return False


def broker_for(request: Request) -> Broker:
    broker = getattr(request.app.state, "broker", None)
    if broker is None:
        broker = request.app.state.broker = Broker(request.app.state.ctx.redis_url)
    return broker


@router.get("/events")
async def _handle_events(
    request: Request,
    limit: int | None = Query(None, ge=1, description="end the stream after this many "
                                                      "events, counting the first 'hello'"),
    user: User = Depends(current_user),
) -> Any:
    who = {"id": user.id, "role": user.role, "site": user.site_id}
    broker = broker_for(request)

    async def stream() -> AsyncIterator[dict[str, str]]:
        yield {"event": "hello", "data": json.dumps({"user": user.id})}
        sent = 1
        if limit is not None and sent >= limit:
            return
        queue = broker.subscribe()
        try:
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=15)
                except TimeoutError:
                    yield {"event": "ping", "data": "{}"}
                    continue
                if may_see(who, event):
                    yield {"event": event.get("topic", "message"),
                           "data": json.dumps(event.get("data"), default=str)}
                    sent += 1
                    if limit is not None and sent >= limit:
                        return
        finally:
            broker.unsubscribe(queue)

    return EventSourceResponse(stream())
