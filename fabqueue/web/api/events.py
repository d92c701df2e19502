"""``/api/events``: live updates by Server-Sent Events (job status, progress, machines)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from sse_starlette.sse import EventSourceResponse

from fabqueue.core.access import Role
from fabqueue.core.reasons import render
from fabqueue.i18n import gettext
from fabqueue.store.models import Job, User
from fabqueue.web.broker import Broker
from fabqueue.web.deps import current_user, request_locale

router = APIRouter(prefix="/api", tags=["events"])


def may_see(user: dict[str, Any], event: dict[str, Any],
            owns_job: Callable[[Any], bool] = lambda job: False) -> bool:
    """What the receiver may see (as ``core.access``): admins all; staff their site's machines
    and jobs; everyone their own jobs, and a machine only while it runs one of them."""
    data = event.get("data") or {}
    topic = str(event.get("topic", ""))
    if user["role"] == Role.ADMIN:
        return True
    if topic.startswith("device:"):
        if user["role"] == Role.STAFF and data.get("site") == user["site"]:
            return True
        return data.get("job") is not None and owns_job(data.get("job"))
    if data.get("owner") == user["id"]:
        return True
    if user["role"] == Role.STAFF:
        return data.get("site") in (None, user["site"])
    if user["role"] == Role.TEACHER:
        return data.get("batch") is not None and data.get("teacher") == user["id"]
    return False


def readable(data: Any, locale: str) -> Any:
    """Workers publish reasons as codes; each subscriber gets them in its own language too."""
    if not isinstance(data, dict) or not isinstance(data.get("reason"), str):
        return data
    return {**data, "reason": render(data["reason"]),
            "reason_text": render(data["reason"], lambda s: gettext(locale, s))}


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
    locale = request_locale(request, user)
    broker = broker_for(request)
    db = request.app.state.db
    owned: dict[Any, bool] = {}  # job id -> is it this user's (asked once per job)

    def _owner_of(job: Any) -> bool:
        if not isinstance(job, int) or not 0 < job < 2**63:
            return False
        with db.session() as s:
            found = s.get(Job, job)
            return found is not None and found.owner_id == user.id

    async def owns_job(job: Any) -> bool:
        if job not in owned:
            owned[job] = await asyncio.to_thread(_owner_of, job)
        return owned[job]

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
                data = event.get("data") or {}
                mine = bool(str(event.get("topic", "")).startswith("device:")
                            and isinstance(data, dict) and await owns_job(data.get("job")))
                if may_see(who, event, lambda job, mine=mine: mine):
                    yield {"event": event.get("topic", "message"),
                           "data": json.dumps(readable(event.get("data"), locale),
                                              default=str)}
                    sent += 1
                    if limit is not None and sent >= limit:
                        return
        finally:
            broker.unsubscribe(queue)

    return EventSourceResponse(stream())
