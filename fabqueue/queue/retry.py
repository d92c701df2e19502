"""A job whose analysis or slicing worker died is tried again, a limited number of times.

Each retry is an event (action ``retried``) in the job's history, with the stage and the
attempt in its data; those events are also the count, so no extra column is needed. After
the last attempt an analysis ends ``invalid`` and a slicing ``failed`` (the state machine has
no slicing → invalid), each with a reason the reader sees in their language.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import select

from fabqueue.core.findings import finding
from fabqueue.core.jobs import JobStatus
from fabqueue.core.reasons import N_, reason
from fabqueue.queue.context import Context
from fabqueue.store.jobs import change_status, lock_job, record
from fabqueue.store.models import JobEvent

log = logging.getLogger(__name__)


class Stage(StrEnum):
    ANALYSIS = "analysis"
    SLICING = "slicing"


class Outcome(StrEnum):
    RETRIED = "retried"
    GAVE_UP = "gave_up"
    SKIPPED = "skipped"


def retries_so_far(session: object, job_id: int, stage: Stage) -> int:
    events = session.scalars(select(JobEvent.data).where(  # type: ignore[attr-defined]
        JobEvent.job_id == job_id, JobEvent.action == "retried"))
    return sum(1 for data in events if (data or {}).get("stage") == stage.value)


def _attempts(ctx: Context, stage: Stage) -> int:
    s = ctx.settings
    return max(1, s.analysis_attempts if stage == Stage.ANALYSIS else s.slicing_attempts)


def retry_or_give_up(ctx: Context, job_id: int, stage: Stage) -> Outcome:
    """The worker of ``stage`` stopped on this job: queue it again, or end it with a reason.

    Queueing is the caller's (the reconciler knows which Redis entry to replace)."""
    status = JobStatus.ANALYZING if stage == Stage.ANALYSIS else JobStatus.SLICING
    with ctx.db.session() as s:
        job = lock_job(s, job_id)
        if job is None or job.status != status:
            return Outcome.SKIPPED
        attempts = _attempts(ctx, stage)
        done = retries_so_far(s, job_id, stage) + 1
        if done >= attempts:
            log.warning("job %s: %s stopped %s times; giving up", job_id, stage, done)
            if stage == Stage.ANALYSIS:
                f = finding("analysis_gave_up", N_(
                    "The analysis stopped {attempts} times without finishing. The model may be "
                    "too complex: simplify it and upload again."), attempts=done)
                job.analysis = {"ok": False, "errors": [f.to_dict()], "warnings": []}
                change_status(s, job, JobStatus.INVALID, action="analysis_failed",
                              reason=reason(f.code, f.text, **f.params))
            else:
                # invalid, as the issue of faults asks and as the analysis does: the model
                # itself is what stops the slicer; staff may still re-run its analysis
                why = reason("slicing_gave_up", N_(
                    "Slicing stopped {attempts} times without finishing. The model may be "
                    "too complex: simplify it and upload again."), attempts=done)
                job.slice_result = {"ok": False, "code": "slicing_gave_up"}
                change_status(s, job, JobStatus.INVALID, action="prepare_failed", reason=why)
            return Outcome.GAVE_UP
        text = (N_("The analysis worker stopped; analysing again (attempt {attempt} of "
                   "{attempts}).") if stage == Stage.ANALYSIS else
                N_("The slicing worker stopped; slicing again (attempt {attempt} of "
                   "{attempts})."))
        why = reason(f"{stage.value}_retried", text, attempt=done + 1, attempts=attempts)
        data = {"stage": stage.value, "attempt": done + 1}
        if job.status == JobStatus.SLICING:
            change_status(s, job, JobStatus.APPROVED, action="retried", reason=why, data=data)
        else:
            record(s, job, "retried", reason=why, data=data)
        job.updated_at = datetime.now(UTC)
    log.info("job %s: %s worker stopped; trying again", job_id, stage)
    return Outcome.RETRIED

