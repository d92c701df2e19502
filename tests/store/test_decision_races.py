"""Staff deciding on one job at once (approve, cancel, reject) resolve to one outcome: the
status change is one conditional UPDATE, the loser gets 409 and writes no audit event.
Real concurrency: threads with their own sessions calling the web's decision functions, and
threads sending HTTP requests to the app; on SQLite and (``-m stack``) PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import select

from fabqueue.store.models import Job, JobEvent, User
from fabqueue.web import approval
from fabqueue.web.deps import ApiError
from tests.conftest import Stack
from tests.queue.helpers import cube_file, new_site, printer, upload, wait_status


def _awaiting(stack: Stack, client, tmp: Path, n: int) -> tuple[list[int], str, dict]:  # type: ignore[no-untyped-def,type-arg]
    site = new_site(stack, [printer(f"dr-{n}-{tmp.name[-6:]}", ["PLA"])])
    resident, staff = stack.user("resident"), stack.user("staff", site)
    r = stack.token(client, resident)
    jobs = [upload(client, r, cube_file(tmp, 10 + i, f"c{i}.stl"), "PLA", site)
            for i in range(n)]
    for job in jobs:
        wait_status(client, r, job, {"awaiting_approval"})
    return jobs, staff, r


def _decisions(stack: Stack, job: int) -> list[JobEvent]:
    """The status changes made by people (the workers' later ones, slicing…, left out)."""
    with stack.ctx.db.session() as s:
        return list(s.scalars(select(JobEvent).where(JobEvent.job_id == job,
                                                      JobEvent.actor_id.is_not(None),
                                                      JobEvent.from_status != JobEvent.to_status)
                              .order_by(JobEvent.id)))


def _race(stack: Stack, job: int, staff: str, actions: list[str]) -> list[int]:
    """Each thread, in its own session, approves or cancels the job; their HTTP codes."""
    start = threading.Barrier(len(actions))
    codes: list[int] = []
    lock = threading.Lock()

    def decide(action: str) -> None:
        with stack.ctx.db.sessionmaker() as db:
            user = db.scalars(select(User).where(User.name == staff)).one()
            j = db.get(Job, job)
            assert j is not None
            start.wait()
            try:
                if action == "approve":
                    approval.approve(stack.ctx, db, j, user)
                elif action == "reject":
                    approval.reject(db, j, user, "not this one")
                else:
                    approval.cancel(stack.ctx, db, j, user)
                db.commit()
                code = 200
            except ApiError as exc:
                db.rollback()
                code = exc.status_code
        with lock:
            codes.append(code)

    threads = [threading.Thread(target=decide, args=(a,)) for a in actions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    return codes


def test_ten_threads_approving_one_job_approve_it_once(stack: Stack, client, tmp_path: Path):
    (job,), staff, _ = _awaiting(stack, client, tmp_path, 1)
    codes = _race(stack, job, staff, ["approve"] * 10)
    assert sorted(codes) == [200] + [409] * 9
    assert [(e.from_status, e.to_status) for e in _decisions(stack, job)] == [
        ("awaiting_approval", "approved")]


def test_ten_threads_approving_and_cancelling_resolve_to_one_outcome(stack: Stack, client,
                                                                     tmp_path: Path):
    (job,), staff, _ = _awaiting(stack, client, tmp_path, 1)
    codes = _race(stack, job, staff, ["approve", "cancel"] * 5)
    assert set(codes) <= {200, 409}
    decisions = _decisions(stack, job)
    # every success is one audit event, every loser none; the events chain (no lost update:
    # two decisions both taken from "awaiting_approval" would be two outcomes)
    assert len(decisions) == codes.count(200) >= 1
    assert decisions[0].from_status == "awaiting_approval"
    assert sum(e.from_status == "awaiting_approval" for e in decisions) == 1
    # cancel wins at once, or approve wins and a later cancel (of an approved job) follows
    assert [e.to_status for e in decisions] in (["cancelled"], ["approved"],
                                                ["approved", "cancelled"])


def test_ten_threads_rejecting_and_approving_one_outcome_each(stack: Stack, client,
                                                              tmp_path: Path):
    (job,), staff, _ = _awaiting(stack, client, tmp_path, 1)
    codes = _race(stack, job, staff, ["reject"] * 5 + ["approve"] * 5)
    decisions = _decisions(stack, job)
    assert len(decisions) == codes.count(200)
    assert sum(e.from_status == "awaiting_approval" for e in decisions) == 1
    assert decisions[-1].to_status == "rejected" or [e.to_status for e in decisions] == [
        "approved"]


def test_concurrent_http_approvals_one_200_the_rest_409(stack: Stack, client,
                                                        tmp_path: Path) -> None:
    (job,), staff, _ = _awaiting(stack, client, tmp_path, 1)
    headers = stack.token(client, staff)
    start = threading.Barrier(10)
    answers: list[Any] = []
    lock = threading.Lock()

    def post() -> None:
        c = stack.client()
        start.wait()
        res = c.post(f"/api/jobs/{job}/approve", headers=headers)
        with lock:
            answers.append((res.status_code, res.json()))

    threads = [threading.Thread(target=post) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    codes = sorted(code for code, _ in answers)
    assert codes == [200] + [409] * 9, answers
    assert all("can't be approved now" in body["detail"] for code, body in answers
               if code == 409)
    assert len(_decisions(stack, job)) == 1
