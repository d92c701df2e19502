"""``POST /api/jobs/{id}/colours``: people choose what the laser does with each colour.

The resident chooses before approval; staff may change the choice at approval. A choice
re-runs the analysis (so the estimate, the picture and later the program follow it).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from fabqueue.core.access import can_manage_job
from fabqueue.core.jobs import JobStatus
from fabqueue.store.jobs import change_status
from fabqueue.store.models import Job, User
from fabqueue.web.api.jobs import load_visible
from fabqueue.web.deps import ApiError, current_user, get_db
from fabqueue.web.intake import enqueue_analysis_safely
from fabqueue.web.params import IdPath

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

#: Statuses in which the choice may still change (nothing has been planned from it yet).
CHOOSABLE = (JobStatus.AWAITING_APPROVAL, JobStatus.INVALID)


class ColoursIn(BaseModel):
    choice: dict[str, str] = Field(default_factory=dict, max_length=500)


def check_choice(job: Job, choice: dict[str, str]) -> dict[str, str]:
    """The full choice for the drawing's paints, or a 422 naming what is wrong."""
    found = {c["key"]: c for c in (job.analysis or {}).get("colours") or []}
    if not found:
        raise ApiError(409, "This job has no colours to choose for.")
    unknown = sorted(set(choice) - set(found))
    if unknown:
        raise ApiError(422, "The drawing has no colour {key}.", key=unknown[0][:40])
    # here, not at the top: laser.paths brings numpy and lxml, ~25 MB that serve would
    # carry idle for a rare request (bench/RESULTS.md, "Many machines per process")
    from fabqueue.laser.paths import CHOICES

    bad = sorted(v for v in choice.values() if v not in CHOICES)
    if bad:
        raise ApiError(422, "Choose one of: {choices}.", choices=", ".join(CHOICES))
    return {key: choice.get(key, row.get("operation") or "ignore") for key, row in found.items()}


@router.post("/{job_id}/colours")
def _handle_colours(job_id: IdPath, body: ColoursIn, request: Request,
                    user: User = Depends(current_user),
                    db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    job = load_visible(db, user, job_id)
    staff = can_manage_job(role=user.role, user_site=user.site_id, job_site=job.site_id)
    if job.owner_id != user.id and not staff:
        raise ApiError(403, "Only the job's owner or lab staff can choose its colours.")
    if job.kind != "laser" or job.status not in CHOOSABLE:
        raise ApiError(409, "The colours can't be changed now: the job is {status}.",
                       status=job.status)
    job.colour_map = check_choice(job, body.choice)
    job.analysis_attempts = 0
    change_status(db, job, JobStatus.ANALYZING, actor_id=user.id, action="colours_chosen",
                  data={"colours": job.colour_map})
    db.commit()
    enqueue_analysis_safely(request.app.state.ctx, job.id)
    return {"id": job.id, "status": job.status, "colour_map": job.colour_map}
