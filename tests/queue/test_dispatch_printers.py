"""Approved prints are sliced (real PrusaSlicer), queued, and run on the right printer;
the bed-clear interlock, pool assignment, staggered start, cancel and re-attach."""

from __future__ import annotations

from pathlib import Path

from fabqueue.queue.device_worker import DeviceWorker
from tests.conftest import Stack, needs_prusaslicer, wait_for
from tests.queue.helpers import (
    cube_file,
    device,
    device_workers,
    new_site,
    printer,
    upload,
    wait_status,
)

pytestmark = needs_prusaslicer


def approve(client, headers, job_id, **body):  # type: ignore[no-untyped-def]
    r = client.post(f"/api/jobs/{job_id}/approve", headers=headers, json=body or None)
    assert r.status_code == 200, r.text
    return r.json()


def test_print_runs_to_done_then_waits_for_bed_clear(stack: Stack, client, tmp_path: Path):
    site = new_site(stack, [printer("p-solo", ["PLA"])])
    resident, staff = stack.user("resident"), stack.user("staff", site)
    r, s = stack.token(client, resident), stack.token(client, staff)
    first = upload(client, r, cube_file(tmp_path), "PLA", site)
    second = upload(client, r, cube_file(tmp_path, 15, "small.stl"), "PLA", site)
    for job in (first, second):
        wait_status(client, r, job, {"awaiting_approval"})
        approve(client, s, job)
    with device_workers(stack, ["p-solo"]):
        job = wait_status(client, r, first, {"done"}, timeout=90)
        assert job["device"] == "p-solo"
        assert job["slicing"]["filament_g"] > 0 and job["slicing"]["estimated_seconds"] > 0
        dev = wait_for(lambda: (d := device(client, s, "p-solo"))["state"] == "needs_bed_clear"
                       and d, what="needs_bed_clear")
        assert dev["job"] == first
        # The interlock: the second job is ready but must not start on an uncleared bed.
        wait_status(client, r, second, {"ready"})
        import time

        time.sleep(1.5)
        assert device(client, s, "p-solo")["state"] == "needs_bed_clear"
        assert client.get(f"/api/jobs/{second}", headers=r).json()["status"] == "ready"
        res = client.post("/api/devices/p-solo/bed-cleared", headers=s, json={"job": first})
        assert res.status_code == 200, res.text
        wait_status(client, r, second, {"running", "done"}, timeout=30)
    # A resident may not clear a bed; clearing a bed twice is refused with a reason.
    assert client.post("/api/devices/p-solo/bed-cleared", headers=r).status_code == 403
    events = client.get(f"/api/jobs/{first}/events", headers=r).json()
    assert [e["to"] for e in events if e["from"] != e["to"]] == [
        "awaiting_approval", "approved", "slicing", "ready", "running", "done"]


def test_pool_runs_two_in_parallel_and_keeps_petg_off_pla_only(stack: Stack, client,
                                                               tmp_path: Path):
    site = new_site(stack, [printer("pla-only", ["PLA"]),
                            printer("pla-petg", ["PLA", "PETG"])])
    resident, staff = stack.user("resident"), stack.user("staff", site)
    r, s = stack.token(client, resident), stack.token(client, staff)
    petg = upload(client, r, cube_file(tmp_path, 18, "petg.stl"), "PETG", site)
    pla = upload(client, r, cube_file(tmp_path, 16, "pla.stl"), "PLA", site)
    for job in (petg, pla):
        wait_status(client, r, job, {"awaiting_approval"})
        approve(client, s, job)
    for job in (petg, pla):
        wait_status(client, r, job, {"ready"})
    stack.ctx.settings.max_heating_per_site = 2
    with device_workers(stack, ["pla-only", "pla-petg"]):
        both = wait_for(lambda: all(
            client.get(f"/api/jobs/{j}", headers=r).json()["status"] in ("running", "done")
            for j in (petg, pla)), timeout=30, what="both jobs to start")
        assert both
        wait_status(client, r, petg, {"done"}, timeout=60)
        wait_status(client, r, pla, {"done"}, timeout=60)
    assert client.get(f"/api/jobs/{petg}", headers=r).json()["device"] == "pla-petg"
    assert client.get(f"/api/jobs/{pla}", headers=r).json()["device"] == "pla-only"


def test_staggered_start_heats_one_printer_at_a_time(stack: Stack, client, tmp_path: Path):
    site = new_site(stack, [printer("h-1", ["PLA"]), printer("h-2", ["PLA"])])
    resident, staff = stack.user("resident"), stack.user("staff", site)
    r, s = stack.token(client, resident), stack.token(client, staff)
    jobs = [upload(client, r, cube_file(tmp_path, 10 + i, f"c{i}.stl"), "PLA", site)
            for i in range(2)]
    for job in jobs:
        wait_status(client, r, job, {"awaiting_approval"})
        approve(client, s, job)
        wait_status(client, r, job, {"ready"})
    from fabqueue.simulators.printer import forget_printer, get_printer

    for d in ("h-1", "h-2"):
        forget_printer(d)
        get_printer(d, speed=400, heat_s=2.0)
    stack.ctx.settings.max_heating_per_site = 1
    seen: set[tuple[str, str]] = set()
    try:
        with device_workers(stack, ["h-1", "h-2"], poll_s=0.1):
            def both_done() -> bool:
                states = {d: device(client, s, d)["state"] for d in ("h-1", "h-2")}
                seen.add((states["h-1"], states["h-2"]))
                return all(client.get(f"/api/jobs/{j}", headers=r).json()["status"] == "done"
                           for j in jobs)

            wait_for(both_done, timeout=60, interval=0.05, what="both prints")
    finally:
        stack.ctx.settings.max_heating_per_site = 2
    assert ("heating", "heating") not in seen
    assert any("heating" in pair for pair in seen)


def test_cancel_from_the_web_stops_the_print(stack: Stack, client, tmp_path: Path):
    site = new_site(stack, [printer("c-1", ["PLA"], simulated_speed=5)])
    resident, staff = stack.user("resident"), stack.user("staff", site)
    r, s = stack.token(client, resident), stack.token(client, staff)
    job = upload(client, r, cube_file(tmp_path), "PLA", site)
    wait_status(client, r, job, {"awaiting_approval"})
    approve(client, s, job)
    from fabqueue.simulators.printer import forget_printer

    forget_printer("c-1")
    with device_workers(stack, ["c-1"]):
        wait_status(client, r, job, {"running"}, timeout=40)
        # the owner can't cancel a running print; staff can
        assert client.post(f"/api/jobs/{job}/cancel", headers=r).status_code == 409
        import time

        # bounds against a hang, not speed (a loaded host is slower; bench/ times stops)
        t0 = time.monotonic()
        assert client.post(f"/api/jobs/{job}/cancel", headers=s).status_code == 200
        wait_status(client, r, job, {"cancelled"}, timeout=30)
        assert time.monotonic() - t0 < 30
        dev = wait_for(lambda: (d := device(client, s, "c-1"))["state"] == "needs_bed_clear"
                       and d, timeout=30, what="needs_bed_clear after cancel")
        assert dev["job"] == job


def test_restarted_device_worker_reattaches_instead_of_printing_twice(stack: Stack, client,
                                                                      tmp_path: Path):
    site = new_site(stack, [printer("r-1", ["PLA"], simulated_speed=60)])
    resident, staff = stack.user("resident"), stack.user("staff", site)
    r, s = stack.token(client, resident), stack.token(client, staff)
    job = upload(client, r, cube_file(tmp_path), "PLA", site)
    wait_status(client, r, job, {"awaiting_approval"})
    approve(client, s, job)
    from fabqueue.simulators.printer import forget_printer, get_printer

    forget_printer("r-1")
    with device_workers(stack, ["r-1"]):
        wait_status(client, r, job, {"running"}, timeout=40)
    # the worker is gone; the (simulated) printer prints on
    sim = get_printer("r-1")
    assert sim.snapshot().job_name is not None
    starts_before = sim.snapshot()
    worker = DeviceWorker(stack.ctx, "r-1", poll_s=0.2)
    assert worker.ensure_connected()
    assert worker.job_id == job  # re-attached by our name on the machine
    worker.lease.release()  # hand the machine over to the worker below without a wait
    with device_workers(stack, ["r-1"]):
        wait_status(client, r, job, {"done"}, timeout=60)
    events = client.get(f"/api/jobs/{job}/events", headers=r).json()
    transitions = [e["to"] for e in events if e["from"] != e["to"]]
    assert transitions.count("running") == 1
    assert any(e["action"] == "reattached" for e in events)
    assert starts_before.job_name == sim.snapshot().job_name
