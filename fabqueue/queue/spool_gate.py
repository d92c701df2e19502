"""The device worker's side of spools: which ready jobs the loaded spool is too light for
(they wait with ``filament_low``; another machine of the pool may take them), and taking an
ended job's grams off the spool in the transaction that records the end."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabqueue.core import spools as rules
from fabqueue.core.jobs import JobStatus
from fabqueue.core.reasons import N_, decode, reason
from fabqueue.store.jobs import queue_event, record
from fabqueue.store.models import Device, Job
from fabqueue.store.models_spools import Spool
from fabqueue.store.spools import job_grams, record_usage, site_stock, start_blocked

FILAMENT_LOW = "filament_low"
#: the live event staff pages hear low stock on (codes and params, no prose)
LOW_TOPIC = "spool:filament_low"


def filament_low_reason(device: Device, remaining_g: float, job_g: float) -> str:
    return reason(FILAMENT_LOW, N_("Waiting for filament: the spool on {device} holds "
                                   "{left} g, this job needs {need} g."),
                  device=device.name or device.id, left=round(remaining_g),
                  need=round(rules.needed(job_g)))


def held_for_filament(session: Session, device: Device, job_ids: Iterable[int]) -> set[int]:
    """The jobs of ``job_ids`` that may not start on ``device`` for want of filament. Each
    gets the reason ``filament_low`` (once: not rewritten every poll) and stays ready."""
    if device.spool_id is None or device.kind != "printer":
        return set()
    ids = list(job_ids)
    if not ids:
        return set()
    held: set[int] = set()
    for job in session.scalars(select(Job).where(Job.id.in_(ids))):
        spool = start_blocked(session, device, job)
        if spool is None:
            continue
        held.add(job.id)
        found = decode(job.status_reason)
        if job.status == JobStatus.READY and (found is None or found.code != FILAMENT_LOW):
            why = filament_low_reason(device, spool.remaining_g, job_grams(job) or 0.0)
            job.status_reason = why
            record(session, job, FILAMENT_LOW, reason=why,
                   data={"device": device.id, "spool": spool.id})
    return held


def clear_filament_low(session: Session, site: str) -> int:
    """A spool was loaded or weighed at ``site``: ready jobs drop their ``filament_low``
    reason (the workers decide again on their next look)."""
    n = 0
    for job in session.scalars(select(Job).where(Job.site_id == site,
                                                 Job.status == JobStatus.READY,
                                                 Job.status_reason.is_not(None))):
        found = decode(job.status_reason)
        if found is not None and found.code == FILAMENT_LOW:
            job.status_reason = None
            n += 1
    return n


def take_off_spool(session: Session, settings: Any, job: Job, device_id: str, ending: str,
                   progress: float | None) -> float | None:
    """The ledger entry for a job that just ended on ``device_id`` (same transaction as the
    end: an end recorded is an end charged, once). When it takes the site's stock of the
    material below its limit, staff are told (``filament_low``), once per crossing."""
    device = session.get(Device, device_id)
    spool = session.get(Spool, device.spool_id) if device and device.spool_id else None
    if device is None or spool is None:
        return None
    site, material = spool.site_id, spool.material
    before = site_stock(session, site, material)
    grams = record_usage(session, job, device, ending, progress)
    if grams is None:
        return None
    after = site_stock(session, site, material)
    limit = rules.threshold_for(settings.spool_low_thresholds, site, material,
                                settings.spool_low_g)
    if after < limit <= before:
        params = {"device": device.name or device.id, "material": material,
                  "grams": round(after), "threshold_g": limit}
        queue_event(session, LOW_TOPIC, {"code": FILAMENT_LOW, "site": site, "params": params})
        from fabqueue import notify

        notify.publish_quietly(session, FILAMENT_LOW, site=site, params=params,
                               dedupe=f"filament_low:{job.id}")
    return grams
