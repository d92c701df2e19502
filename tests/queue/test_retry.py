"""A job whose worker keeps dying (issue 9 item 3): tried again at most N times, each retry an
event in its history, then ``invalid`` with a reason in the reader's language. The reconciler
calls ``retry_or_give_up`` when it finds a stage's worker gone (tests/faults kill real ones);
here the counting and the ending, on the session's database."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from fabqueue.core.reasons import decode
from fabqueue.queue.retry import Outcome, Stage, retry_or_give_up
from fabqueue.store.models import Job, JobEvent
from tests.conftest import Stack
from tests.helpers import cube_stl, english_client, login, settled, upload


@pytest.fixture
def client(stack: Stack) -> TestClient:
    return english_client(stack)


def analysed_job(stack: Stack, client: TestClient, status: str) -> int:
    """A job analysed by the session's worker, then put in ``status`` as if a worker had
    just taken it (no queue entry: nothing else touches it)."""
    r = login(stack, client, "resident")
    made = upload(client, r, "retry.stl", cube_stl(10))
    assert made.status_code == 201, made.text
    job_id = int(made.json()["id"])
    assert settled(client, r, job_id)["status"] == "awaiting_approval"
    with stack.ctx.db.session() as s:
        job = s.get(Job, job_id)
        assert job is not None
        job.status = status
    return job_id


@pytest.mark.parametrize(("stage", "status", "code"), [
    (Stage.ANALYSIS, "analyzing", "analysis_gave_up"),
    (Stage.SLICING, "slicing", "slicing_gave_up"),
])
def test_retried_up_to_the_limit_then_invalid_with_a_reason(
        stack: Stack, client: TestClient, stage: Stage, status: str, code: str) -> None:
    job_id = analysed_job(stack, client, status)
    limit = (stack.ctx.settings.analysis_attempts if stage is Stage.ANALYSIS
             else stack.ctx.settings.slicing_attempts)
    assert limit >= 2
    for _ in range(2, limit + 1):
        assert retry_or_give_up(stack.ctx, job_id, stage) is Outcome.RETRIED
        # the reconciler queues it again; the next worker takes it (and dies too)
        assert stack.job(job_id).status == ("analyzing" if stage is Stage.ANALYSIS
                                            else "approved")
        with stack.ctx.db.session() as s:
            s.get(Job, job_id).status = status  # type: ignore[union-attr]
    assert retry_or_give_up(stack.ctx, job_id, stage) is Outcome.GAVE_UP
    job = stack.job(job_id)
    assert job.status == "invalid"
    found = decode(job.status_reason)
    assert found is not None and found.code == code and found.params["attempts"] == limit
    with stack.ctx.db.session() as s:
        retried = [e.data for e in s.query(JobEvent).filter_by(job_id=job_id, action="retried")]
    assert [d["attempt"] for d in retried] == list(range(2, limit + 1))
    assert all(d["stage"] == stage.value for d in retried)
    # a job that is no longer in that stage is left alone (a late or doubled report)
    assert retry_or_give_up(stack.ctx, job_id, stage) is Outcome.SKIPPED
    # shown in the reader's language, not as the stored code
    r = login(stack, client, "staff")
    lt = client.get(f"/api/jobs/{job_id}", headers={**r, "Accept-Language": "lt"}).json()
    assert lt["status_reason_code"] == code
    assert lt["status_reason_text"] and "{attempts}" not in lt["status_reason_text"]
    assert lt["status_reason_text"] != lt["status_reason"]  # English stays for scripts
