"""When will it be ready? Queue positions, expected start and finish, learned estimates.

The arithmetic is pure (``core.scheduling``); this module gathers its inputs: waiting jobs,
each machine's time until free, and each machine's recent actual/estimated ratio.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from statistics import median
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabqueue.core.jobs import QUEUED, JobStatus
from fabqueue.core.scheduling import Candidate, corrected_estimate, expected_times, order
from fabqueue.store.models import Device, Job

RATIO_WINDOW = 10  # finished jobs per machine that teach its ratio
BED_CLEAR_ALLOWANCE_S = 600  # a printer waiting for staff is free in about this long


def estimate_of(job: Job) -> float | None:
    value = (job.slice_result or {}).get("estimated_seconds") or (job.analysis or {}).get(
        "estimated_seconds")
    return float(value) if value else None


def device_ratios(session: Session, device_ids: list[str]) -> dict[str, list[float]]:
    """Actual ÷ estimated time of each machine's recent finished jobs."""
    out: dict[str, list[float]] = {d: [] for d in device_ids}
    if not device_ids:
        return out
    rows = session.scalars(select(Job).where(
        Job.device_id.in_(device_ids), Job.status == JobStatus.DONE,
        Job.actual_seconds.is_not(None)).order_by(Job.finished_at.desc()).limit(
        RATIO_WINDOW * len(device_ids)))
    for job in rows:
        est = estimate_of(job)
        if est and job.device_id in out and len(out[job.device_id]) < RATIO_WINDOW:
            out[job.device_id].append(float(job.actual_seconds or 0) / est)
    return out


def device_ratio(session: Session, device_id: str) -> float | None:
    ratios = [r for r in device_ratios(session, [device_id])[device_id] if 0.2 <= r <= 5]
    return round(median(ratios), 3) if ratios else None


def queue_order(session: Session, site_id: str | None, kind: str, *, limit: int = 500,
                now: datetime | None = None,
                ) -> tuple[list[Candidate], dict[int, tuple[float, float]]]:
    """A site's waiting jobs of one kind ("printer"/"print" or "laser") in dispatch order,
    with expected (start, finish) epoch seconds.

    Cheap enough per request: the order needs only a few figures of each job, which the
    database picks out of the JSON columns; estimates are corrected by the machines'
    recent actual/estimated ratios. Analysis and slicer estimates already count copies."""
    laser = kind == "laser"
    t0 = (now or datetime.now(UTC)).timestamp()
    q = select(Job.id, Job.owner_id, Job.batch_id, Job.material_id, Job.priority,
               Job.pinned_device_id, Job.slice_result["estimated_seconds"],
               Job.analysis["estimated_seconds"]).where(
        Job.kind == ("laser" if laser else "print"),
        Job.status.in_([s.value for s in QUEUED]))
    q = q.where(Job.site_id == site_id) if site_id else q.where(Job.site_id.is_(None))
    rows = list(session.execute(q.order_by(Job.id).limit(limit)))
    if not rows:
        return [], {}
    machine_q = select(Device).where(Device.kind == ("laser" if laser else "printer"),
                                     Device.enabled.is_(True))
    if site_id:
        machine_q = machine_q.where(Device.site_id == site_id)
    machines = list(session.scalars(machine_q))
    ratios = [r for rs in device_ratios(session, [m.id for m in machines]).values() for r in rs]
    free_at = []
    for m in machines:
        if m.state in ("offline", "error", "disabled"):
            continue
        left = BED_CLEAR_ALLOWANCE_S if m.state == "needs_bed_clear" else (m.time_left_s or 0)
        free_at.append(t0 + float(left))

    def seconds(sliced: object, analysed: object) -> float:
        for value in (sliced, analysed):
            if isinstance(value, int | float) and value > 0:
                return corrected_estimate(float(value), ratios)
        return 3600.0

    cands = [Candidate(i, owner, batch, material, priority, (), pinned, seconds(sl, an))
             for i, owner, batch, material, priority, pinned, sl, an in rows]
    ordered = order(cands, {})
    return ordered, expected_times(ordered, free_at or [t0 + 3600.0], t0)


def site_forecast(session: Session, site_id: str | None, kind: str,
                  now: datetime | None = None) -> dict[int, dict[str, Any]]:
    """Position and expected start/finish of every waiting job of a site and kind."""
    ordered, times = queue_order(session, site_id, kind, now=now)
    out: dict[int, dict[str, Any]] = {}
    for position, c in enumerate(ordered, start=1):
        start, finish = times[c.job_id]
        out[c.job_id] = {
            "position": position,
            "expected_start": datetime.fromtimestamp(start, UTC).isoformat(),
            "expected_finish": datetime.fromtimestamp(finish, UTC).isoformat(),
            "estimated_seconds": round(c.estimated_seconds or 0),
        }
    return out


def month_usage_g(session: Session, owner_id: int, now: datetime | None = None,
                  exclude_job: int | None = None) -> float:
    """Grams a person's jobs use this month (approved or waiting; not refused ones)."""
    now = now or datetime.now(UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    counted = [JobStatus.AWAITING_APPROVAL, JobStatus.APPROVED, JobStatus.SLICING,
               JobStatus.READY, JobStatus.RUNNING, JobStatus.DONE, JobStatus.INTERRUPTED]
    rows = session.scalars(select(Job).where(
        Job.owner_id == owner_id, Job.created_at >= start - timedelta(seconds=1),
        Job.status.in_([s.value for s in counted])))
    return sum(float((j.analysis or {}).get("material_g") or 0) for j in rows
               if j.id != exclude_job)
