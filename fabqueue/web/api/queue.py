"""``/api/queue``: the waiting jobs of a site in expected order, with start and finish."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabqueue.core.access import can_manage_job, is_staff
from fabqueue.store.forecast import site_forecast
from fabqueue.store.models import Job, User
from fabqueue.web.deps import current_user, get_db

router = APIRouter(prefix="/api/queue", tags=["queue"])


@router.get("")
def _handle_queue(site: str | None = None,
                  kind: str = Query("printer", pattern="^(printer|laser)$"),
                  user: User = Depends(current_user),
                  db: Session = Depends(get_db, scope="function")) -> list[dict[str, Any]]:
    """Everyone sees the queue's shape; only the site's staff see whose jobs the others are."""
    site = site or (user.site_id if is_staff(user.role) else None)
    forecast = site_forecast(db, site, kind)
    if not forecast:
        return []
    jobs = {j.id: j for j in db.scalars(select(Job).where(Job.id.in_(list(forecast))))}
    out = []
    for job_id, entry in sorted(forecast.items(), key=lambda kv: kv[1]["position"]):
        job = jobs[job_id]
        mine = job.owner_id == user.id
        # staff of another site see the queue's shape only, like residents
        visible = mine or can_manage_job(role=user.role, user_site=user.site_id,
                                         job_site=job.site_id)
        out.append({**entry, "job": job_id if visible else None, "mine": mine,
                    "status": job.status, "priority": job.priority if visible else None,
                    "file_name": job.file_name if visible else None,
                    "owner": job.owner_id if visible else None})
    return out
