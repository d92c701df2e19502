"""A start the machine refused: the job goes back to ``ready`` exactly as it was.

The worker marks a job ``running`` before it hands the program over (one commit with the
machine's row). When the machine then refuses (busy, alarm, not in laser mode) nothing ran:
going through ``interrupted`` would notify the owner of an interruption that never happened.
So the status is put back directly, with an audit entry and a live event for the pages.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from fabqueue import events
from fabqueue.core.jobs import JobStatus
from fabqueue.store.jobs import queue_event, record
from fabqueue.store.models import Job, utcnow


def restore_ready(session: Session, job: Job, started_at_before: datetime | None,
                  reason: str | None, device_id: str) -> None:
    """Undo the ``ready → running`` step for a job that never started."""
    ev = record(session, job, "start_refused", reason=reason, data={"device": device_id})
    ev.to_status = JobStatus.READY.value
    job.status = JobStatus.READY.value
    job.status_reason = None
    job.started_at = started_at_before  # fair share counts starts: this was none
    job.device_id = None
    job.updated_at = utcnow()
    queue_event(session, events.JOB_STATUS, {
        "job": job.id, "from": JobStatus.RUNNING.value, "to": JobStatus.READY.value,
        "reason": None, "owner": job.owner_id, "site": job.site_id, "batch": job.batch_id,
        "teacher": job.batch.teacher_id if job.batch_id and job.batch else None,
    })
