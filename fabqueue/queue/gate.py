"""The device worker asks the start gate before it takes a job (issue 17).

A machine out of order or with a maintenance task due takes no new job (one already running
finishes). Its state reason says why on the board; jobs that only this machine can run (pinned
to it) wait with the reason ``maintenance_due`` (or ``out_of_order``); pool jobs are simply
left for another machine. Once staff record the task done or return the machine, the reasons
are cleared and work resumes at the next look.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from fabqueue.core.jobs import JobStatus
from fabqueue.core.reasons import decode, reason
from fabqueue.store import trainings as st
from fabqueue.store.models import Device, Job

CODES = ("maintenance_due", "out_of_order")
RECHECK_S = 2.0  # a laser looks for work ten times a second: the verdict is kept this long


def verdict_reason(code: str, text: str, params: dict[str, Any]) -> str:
    return reason(code, text, **params)


def machine_blocked(worker: Any, *, fresh: bool = False) -> bool:
    """True when the machine may take no job now; keeps the board's and the pinned jobs'
    reasons in step with the answer."""
    cached: tuple[float, bool] | None = getattr(worker, "_gate_cache", None)
    if not fresh and cached is not None and time.monotonic() - cached[0] < RECHECK_S:
        return cached[1]
    now = datetime.now(UTC)
    with worker.ctx.db.session() as s:
        d = s.get(Device, worker.device_id)
        if d is None:
            return True
        v = st.check(s, d, None, None, now, worker.ctx.settings.timezone)
        current = decode(d.state_reason)
        shown = current.code if current else None
        stored = None if v.ok else verdict_reason(v.code or "", v.text, v.params)
        _pinned_jobs_wait(s, d.id, stored)
        state_reason = d.state_reason
        offered = d.current_job_id if d.state == "awaiting_operator" else None
    worker._gate_cache = (time.monotonic(), not v.ok)
    if not v.ok and state_reason != stored and worker.job_id is None:
        # withdraw a laser's offer: nobody may confirm a start on this machine now
        extra: dict[str, Any] = {"state": "idle", "current_job_id": None} if offered else {}
        worker._set_device(state_reason=stored, confirmation=None, **extra)
    elif v.ok and shown in CODES:
        worker._set_device(state_reason=None)
    return not v.ok


def _pinned_jobs_wait(s: Any, device_id: str, stored: str | None) -> None:
    """Ready jobs pinned to this machine say why they wait (or stop saying it)."""
    for j in s.scalars(select(Job).where(Job.pinned_device_id == device_id,
                                         Job.status == JobStatus.READY.value)):
        found = decode(j.status_reason)
        if stored is not None and j.status_reason != stored and (
                j.status_reason is None or (found is not None and found.code in CODES)):
            j.status_reason = stored
        elif stored is None and found is not None and found.code in CODES:
            j.status_reason = None
