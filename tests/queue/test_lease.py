"""One driver per machine: the lease and its fencing token, with real device-worker processes
on one simulated printer (the simulated printer lives inside the worker's process, so a
worker that takes over finds a machine that does not know the job: the job becomes
``interrupted``, never printed twice, and the machine is repaired, not left ``busy``).
The OctoPrint twin of these tests is test_lease_octoprint.py (re-attach to a live print)."""

from __future__ import annotations

import os
import secrets
import signal
import time
from pathlib import Path

import pytest

from fabqueue.queue.lease import Lease, LeaseLost
from tests.conftest import Stack, needs_prusaslicer, wait_for
from tests.queue.helpers import cube_file, device, new_site, printer, upload, wait_status
from tests.queue.lease_procs import TTL_S, lease_row, start_worker


def test_lease_is_exclusive_expires_and_fences_stale_writes(stack: Stack) -> None:
    dev = f"lease-{secrets.token_hex(3)}"
    new_site(stack, [printer(dev, ["PLA"])])
    a = Lease(stack.ctx.db, dev, ttl_s=0.5, owner="a")
    b = Lease(stack.ctx.db, dev, ttl_s=30, owner="b")
    assert a.acquire()
    first = a.token
    assert not b.acquire()  # held: b waits
    with stack.ctx.db.session() as s:
        a.fence(s, state="busy")  # the holder writes
    assert lease_row(stack, dev)["state"] == "busy"
    # a stops renewing (paused): once its lease has expired, b takes over with a new token
    wait_for(b.acquire, timeout=20, interval=0.2, what="b to take the expired lease")
    assert b.token == (first or 0) + 1
    with pytest.raises(LeaseLost), stack.ctx.db.session() as s:
        a.fence(s, state="idle", progress=50.0)
    row = lease_row(stack, dev)
    assert (row["state"], row["progress"], row["lease_owner"]) == ("busy", None, "b")
    assert not a.held
    assert not a.acquire()  # b's lease is live: a waits again
    b.release()
    assert a.acquire()  # released on a clean stop: no wait for the expiry
    assert a.token == (first or 0) + 2


def test_a_busy_loop_keeps_its_lease_and_a_hung_one_lets_it_go(stack: Stack) -> None:
    """The keeper renews while the driving loop is inside one long step (it writes nothing
    and never comes round to renew), but not for a loop stuck past ``stall_s``."""
    dev = f"lk-{secrets.token_hex(3)}"
    new_site(stack, [printer(dev, ["PLA"])])
    a = Lease(stack.ctx.db, dev, ttl_s=2.0, owner="a", stall_s=6.0)
    b = Lease(stack.ctx.db, dev, ttl_s=30, owner="b")
    assert a.acquire()
    a.keep()  # the loop came round once, then is busy
    try:
        end = time.monotonic() + 5.0  # 2.5 lifetimes of the lease, inside stall_s
        while time.monotonic() < end:
            assert not b.acquire(), lease_row(stack, dev)
            time.sleep(0.2)
        assert a.held and lease_row(stack, dev)["lease_owner"] == "a"
        # past stall_s the loop counts as hung: the keeper stops and the lease lapses
        wait_for(b.acquire, timeout=30, interval=0.2, what="b to take a hung worker's lease")
        assert lease_row(stack, dev)["lease_owner"] == "b"
    finally:
        a.release()
        b.release()


def _ready_job(stack: Stack, client, site: str, tmp: Path) -> tuple[int, dict, dict]:  # type: ignore[no-untyped-def,type-arg]
    resident, staff = stack.user("resident"), stack.user("staff", site)
    r, s = stack.token(client, resident), stack.token(client, staff)
    job = upload(client, r, cube_file(tmp, 20), "PLA", site)
    wait_status(client, r, job, {"awaiting_approval"})
    assert client.post(f"/api/jobs/{job}/approve", headers=s).status_code == 200
    wait_status(client, r, job, {"ready"}, timeout=90)
    return job, r, s


def _transitions(client, headers, job: int) -> list[str]:  # type: ignore[no-untyped-def]
    events = client.get(f"/api/jobs/{job}/events", headers=headers).json()
    return [e["to"] for e in events if e["from"] != e["to"]]


@needs_prusaslicer
def test_two_workers_one_drives_and_the_other_takes_over_after_kill(
        stack: Stack, client, tmp_path: Path) -> None:
    dev = f"ls-{secrets.token_hex(3)}"
    site = new_site(stack, [printer(dev, ["PLA"], simulated_speed=2)])
    job, r, s = _ready_job(stack, client, site, tmp_path)
    a = start_worker(stack, dev, "a")
    b = None
    try:
        wait_for(lambda: a.holds(stack, dev), timeout=30, what="a to take the lease")
        token = lease_row(stack, dev)["fencing_token"]
        wait_status(client, r, job, {"running"}, timeout=30)
        b = start_worker(stack, dev, "b")
        wait_for(lambda: "waiting: the machine is driven by" in b.text(), timeout=30,
                 what="b to say it waits")
        # for several lease lifetimes a keeps renewing and b only waits
        end = time.monotonic() + 3 * TTL_S
        while time.monotonic() < end:
            assert a.holds(stack, dev), lease_row(stack, dev)
            assert lease_row(stack, dev)["fencing_token"] == token
            time.sleep(0.3)
        assert f"{dev}: connected" not in b.text()
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait()
        wait_for(lambda: b.holds(stack, dev), timeout=30, what="b to take over")
        assert lease_row(stack, dev)["fencing_token"] == token + 1
        # b's machine does not know the job: interrupted (staff decide), never restarted
        wait_status(client, r, job, {"interrupted"}, timeout=30)
        # and the machine is repaired (not left busy on a job that no longer runs)
        wait_for(lambda: device(client, s, dev)["state"] == "needs_bed_clear", timeout=20,
                 what="needs_bed_clear")
        shown = device(client, s, dev)["job"]  # what the board shows on the bed
        assert client.post(f"/api/devices/{dev}/bed-cleared", headers=s,
                           json={"job": shown}).status_code == 200
        wait_for(lambda: device(client, s, dev)["state"] == "idle", timeout=10, what="idle")
        assert f"{dev}: connected" in b.text()
    finally:
        a.stop()
        if b is not None:
            b.stop()
    assert _transitions(client, r, job).count("running") == 1


@needs_prusaslicer
def test_a_paused_worker_whose_lease_was_taken_writes_nothing_after(
        stack: Stack, client, tmp_path: Path) -> None:
    dev = f"lp-{secrets.token_hex(3)}"
    site = new_site(stack, [printer(dev, ["PLA"], simulated_speed=2)])
    job, r, _s = _ready_job(stack, client, site, tmp_path)
    a = start_worker(stack, dev, "a")
    b = start_worker(stack, dev, "b")
    try:
        wait_for(lambda: a.holds(stack, dev) or b.holds(stack, dev), timeout=30,
                 what="a lease holder")
        holder, other = (a, b) if a.holds(stack, dev) else (b, a)
        wait_status(client, r, job, {"running"}, timeout=30)
        wait_for(lambda: (lease_row(stack, dev)["progress"] or 0) > 0, timeout=30,
                 what="printing")
        os.kill(holder.pid, signal.SIGSTOP)  # a long pause: the lease runs out
        wait_for(lambda: other.holds(stack, dev), timeout=30, what="the other to take over")
        wait_status(client, r, job, {"interrupted"}, timeout=30)
        wait_for(lambda: lease_row(stack, dev)["state"] == "needs_bed_clear", timeout=20,
                 what="needs_bed_clear")
        before = lease_row(stack, dev)
        events_before = client.get(f"/api/jobs/{job}/events", headers=r).json()
        os.kill(holder.pid, signal.SIGCONT)
        wait_for(lambda: "lease lost" in holder.text(), timeout=30,
                 what="the woken worker to notice it lost the lease")
        # it keeps waiting (alive, not driving) and its machine view changes nothing
        end = time.monotonic() + 2 * TTL_S
        while time.monotonic() < end:
            now = lease_row(stack, dev)
            for key in ("state", "progress", "current_job_id", "seen_at", "state_reason",
                        "fencing_token", "lease_owner"):
                assert now[key] == before[key], (key, now[key], before[key])
            time.sleep(0.3)
        assert holder.proc.poll() is None
        assert client.get(f"/api/jobs/{job}/events", headers=r).json() == events_before
        assert client.get(f"/api/jobs/{job}", headers=r).json()["status"] == "interrupted"
    finally:
        a.stop()
        b.stop()
    assert _transitions(client, r, job).count("running") == 1


def test_a_machine_left_busy_on_a_job_that_no_longer_runs_is_repaired(
        stack: Stack, client, tmp_path: Path) -> None:
    """The stuck case of issue 9: an orphan left the printer ``busy`` on an interrupted job
    (and its lease behind). The next worker takes the expired lease, the machine's own
    state wins, and bed-cleared works; a print FabQueue did not start keeps it busy (the
    waiting job is not sent to it) until it ends."""
    from datetime import UTC, datetime, timedelta

    from fabqueue.core.reasons import decode
    from fabqueue.queue.pipeline import push_ready
    from fabqueue.simulators.printer import forget_printer, get_printer
    from fabqueue.store.models import Device, Job
    from tests.queue.helpers import PROGRAM, device_workers, ready_jobs
    from tests.queue.test_lease_races import _pool_of as _pool

    dev = f"lr-{secrets.token_hex(3)}"
    site = new_site(stack, [printer(dev, ["PLA"], simulated_speed=20)])
    (job,) = ready_jobs(stack, site, 1)
    with stack.ctx.db.session() as s:
        j = s.get(Job, job)
        j.status, j.device_id = "interrupted", dev  # type: ignore[union-attr]
        d = s.get(Device, dev)
        assert d is not None
        d.state, d.current_job_id, d.progress = "busy", job, 40.0
        d.lease_owner, d.fencing_token = "ghost:1:abc", 7
        d.lease_expires_at = datetime.now(UTC) - timedelta(seconds=1)
    staff = stack.token(client, stack.user("staff", site))
    forget_printer(dev)
    try:
        with device_workers(stack, [dev]):
            wait_for(lambda: device(client, staff, dev)["state"] == "needs_bed_clear",
                     timeout=20, what="the busy machine repaired")
            assert lease_row(stack, dev)["fencing_token"] == 8
            shown = device(client, staff, dev)["job"]
            assert client.post(f"/api/devices/{dev}/bed-cleared", headers=staff,
                               json={"job": shown}).status_code == 200
            wait_for(lambda: device(client, staff, dev)["state"] == "idle", timeout=10,
                     what="idle")
            program = tmp_path / "untracked.gcode"
            program.write_bytes(PROGRAM)
            get_printer(dev).start("someone-elses.gcode", program)  # not started by us
            (waiting,) = ready_jobs(stack, site, 1, fits=[dev])
            push_ready(stack.ctx, waiting, _pool(stack, dev))
            row = wait_for(lambda: (r := lease_row(stack, dev))["state"] == "busy" and r,
                           timeout=20, what="busy with an untracked print")
            found = decode(row["state_reason"])
            assert found is not None and found.code == "untracked_print"
            # when it ends the printer waits for its bed to be cleared, as after any print
            wait_for(lambda: device(client, staff, dev)["state"] == "needs_bed_clear",
                     timeout=60, what="needs_bed_clear after the untracked print")
            assert stack.job(waiting).status == "ready"  # the interlock holds it
    finally:
        forget_printer(dev)
    assert stack.job(job).status == "interrupted"  # never restarted by itself
