"""Queue position and expected times, learned ratios, and quotas that leave the decision
to staff instead of losing the job."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from tests.conftest import Stack
from tests.queue.helpers import cube_file, new_site, printer, upload, wait_status


def test_waiting_jobs_get_positions_and_expected_times(stack: Stack, client,
                                                       tmp_path: Path) -> None:
    site = new_site(stack, [printer("f-1", ["PLA"])])  # no worker drives it: jobs wait
    alice, bob, staff = stack.user("resident"), stack.user("resident"), stack.user("staff",
                                                                                    site)
    a, b, s = (stack.token(client, n) for n in (alice, bob, staff))
    jobs = [(a, upload(client, a, cube_file(tmp_path, 10 + i, f"a{i}.stl"), "PLA", site))
            for i in range(2)] + [(b, upload(client, b, cube_file(tmp_path, 12), "PLA", site))]
    for headers, job in jobs:
        wait_status(client, headers, job, {"awaiting_approval"})
        assert client.post(f"/api/jobs/{job}/approve", headers=s).status_code == 200
    for headers, job in jobs:
        wait_status(client, headers, job, {"ready"}, timeout=60)
    queue = {job: client.get(f"/api/jobs/{job}", headers=h).json()["queue"] for h, job in jobs}
    positions = {job: q["position"] for job, q in queue.items()}
    # round robin: Bob's only job goes before Alice's second
    assert positions[jobs[0][1]] == 1 and positions[jobs[2][1]] == 2
    assert positions[jobs[1][1]] == 3
    starts = [datetime.fromisoformat(queue[j]["expected_start"]) for _, j in jobs]
    finishes = [datetime.fromisoformat(queue[j]["expected_finish"]) for _, j in jobs]
    assert all(f > st for st, f in zip(starts, finishes, strict=True))
    listed = client.get("/api/queue", params={"site": site}, headers=b).json()
    assert [e["position"] for e in listed] == [1, 2, 3]
    assert [e["mine"] for e in listed] == [False, True, False]
    assert listed[0]["file_name"] is None  # others' jobs are anonymous to a resident
    staff_view = client.get("/api/queue", params={"site": site}, headers=s).json()
    assert all(e["file_name"] for e in staff_view)
    # staff move Alice's second job to the front
    assert client.post(f"/api/jobs/{jobs[1][1]}/move", headers=s,
                       json={"front": True}).status_code == 200
    assert client.get(f"/api/jobs/{jobs[1][1]}", headers=a).json()["queue"]["position"] == 1
    assert client.post(f"/api/jobs/{jobs[1][1]}/move", headers=a,
                       json={"front": True}).status_code == 403


def test_over_quota_waits_for_staff_with_a_note(stack: Stack, client, tmp_path: Path) -> None:
    site = new_site(stack, [printer("q-1", ["PLA"])])
    resident = stack.user("resident")
    from sqlalchemy import select

    from fabqueue.store.models import User

    with stack.ctx.db.session() as db:
        db.scalars(select(User).where(User.name == resident)).one().quota_g_month = 1.0
    r = stack.token(client, resident)
    job = upload(client, r, cube_file(tmp_path, 20), "PLA", site)
    result = wait_status(client, r, job, {"awaiting_approval", "invalid"})
    assert result["status"] == "awaiting_approval"
    assert "over_quota" in result["analysis"]["warning_codes"]
    assert any("allowance" in w for w in result["analysis"]["warnings"])
