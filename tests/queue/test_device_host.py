"""Many machines in one process (``fabqueue device-host``): a thread each, kept apart.

The host runs as a real process, as ``serve`` starts it. Its faults are made inside it: a
machine whose driver hangs (a call that never returns) and one whose driver raises, beside
machines that print. Simulated printers are used because they live inside the host's
process: a hang or a bug can be put into one machine's driver there (the patch below, run in
the host's own process) without touching the others, which no peer over the network allows
(a peer that stops answering is cut off by the drivers' deadlines, not hung). A thread cannot
be killed, so a hung one stays blocked until its process ends: in a process of its own it
ends with the test.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from fabqueue.queue import names
from fabqueue.queue.pipeline import push_ready
from fabqueue.store.models import Job, JobEvent
from tests.conftest import Stack, needs_prusaslicer, wait_for
from tests.prusalink_fixtures import PrusaLinkPeer, prusalink  # noqa: F401
from tests.queue.helpers import device, new_site, printer, ready_jobs
from tests.queue.lease_procs import lease_row

#: runs ``fabqueue device-host`` with two machines' drivers broken (by their id's ending):
#: ``-hang`` blocks forever in its first status call once printing (later calls answer, so
#: the fresh worker that takes over finds the print), ``-boom`` raises on every call
FAULTY_HOST = """
import sys, threading
from fabqueue.drivers import simulated

status = simulated.SimulatedPrinterDriver.status
hung = threading.Event()

def faulty(self):
    if self.device_id.endswith("-boom"):
        raise RuntimeError("a bug in this machine's driver")
    if self.device_id.endswith("-hang") and self.printer.snapshot().job_name \\
            and not hung.is_set():
        hung.set()
        threading.Event().wait()  # never returns
    return status(self)

simulated.SimulatedPrinterDriver.status = faulty
from fabqueue.cli import app
sys.argv = ["fabqueue", *sys.argv[1:]]
app()
"""

STALL_S = 6.0  # the hung machine's loop is given up after this (production: 600 s)


def pinned_job(stack: Stack, site: str, device_id: str) -> int:
    """A ready job that only ``device_id`` may run, on its own queue."""
    (job,) = ready_jobs(stack, site, 1, fits=[device_id])
    with stack.ctx.db.session() as s:
        j = s.get(Job, job)
        assert j is not None
        j.pinned_device_id = device_id
    push_ready(stack.ctx, job, names.device_queue(device_id))
    return job


def start_host(stack: Stack, site: str, log: Path, *, code: str | None = None,
               **env: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-c", code, "device-host", "--site", site] if code else \
        [sys.executable, "-m", "fabqueue", "device-host", "--site", site]
    with log.open("ab") as out:
        return subprocess.Popen(argv, env={**stack.env, **env}, stdout=out,
                                stderr=subprocess.STDOUT)


def actions(stack: Stack, job_id: int) -> list[str]:
    with stack.ctx.db.session() as s:
        return list(s.scalars(select(JobEvent.action).where(JobEvent.job_id == job_id)
                              .order_by(JobEvent.id)))


def running_count(stack: Stack, job_id: int) -> int:
    with stack.ctx.db.session() as s:
        return len(list(s.scalars(select(JobEvent.id).where(
            JobEvent.job_id == job_id, JobEvent.to_status == "running",
            JobEvent.from_status != "running"))))


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_hung_and_a_raising_driver_stop_no_other_machine(stack: Stack,
                                                           tmp_path: Path) -> None:
    tag = secrets.token_hex(2)
    good = [f"dh{tag}-{i}" for i in range(3)]
    hang, boom = f"dh{tag}-hang", f"dh{tag}-boom"
    site = new_site(stack, [printer(d, ["PLA"], simulated_speed=20)
                            for d in (*good, hang, boom)])
    jobs = {d: pinned_job(stack, site, d) for d in (*good, hang, boom)}
    log = tmp_path / "host.log"
    host = start_host(stack, site, log, code=FAULTY_HOST,
                      FABQUEUE_MACHINE_STALL_S=str(STALL_S))
    try:
        def ended(device_id: str) -> bool:
            assert host.poll() is None, log.read_text(errors="replace")
            return stack.job(jobs[device_id]).status in ("done", "failed", "interrupted")

        # the machines beside the broken two print to the end, none losing its lease
        wait_for(lambda: all(ended(d) for d in good), timeout=120, interval=0.3,
                 what="the good machines' prints to end")
        for d in good:
            assert stack.job(jobs[d]).status == "done", (d, actions(stack, jobs[d]))
            assert lease_row(stack, d)["fencing_token"] == 1
        # the hung one: its lease lapsed and a fresh worker took it over with a new token,
        # found the print by its name and saw it to its end, started once
        wait_for(lambda: ended(hang), timeout=120, interval=0.3,
                 what="the hung machine's print to end under a fresh worker")
        assert stack.job(jobs[hang]).status == "done", actions(stack, jobs[hang])
        assert lease_row(stack, hang)["fencing_token"] == 2
        assert "reattached" in actions(stack, jobs[hang])
        assert running_count(stack, jobs[hang]) == 1
        text = log.read_text(errors="replace")
        assert f"{hang}: its loop has not come round" in text
        # the raising one carries on failing alone: its job was never started
        assert "a bug in this machine's driver" in text
        assert stack.job(jobs[boom]).status == "ready"
        assert host.poll() is None
    finally:
        stop(host)
    text = log.read_text(errors="replace")
    assert host.returncode == 0, text[-3000:]
    for d in good:  # a clean stop releases every lease it held
        assert lease_row(stack, d)["lease_owner"] is None, d


def test_a_host_killed_mid_print_leaves_no_print_started_twice(stack: Stack,
                                                              tmp_path: Path) -> None:
    """SIGKILL takes every machine's worker at once: the next host waits for the leases to
    lapse, takes them with new tokens, and re-attaches to the prints (the simulated printers
    died with the host's process: their jobs become ``interrupted``, never started again;
    the re-attach to a live print on a real host is the next test's)."""
    tag = secrets.token_hex(2)
    ids = [f"dk{tag}-{i}" for i in range(3)]
    site = new_site(stack, [printer(d, ["PLA"], simulated_speed=2) for d in ids])
    jobs = {d: pinned_job(stack, site, d) for d in ids}
    log = tmp_path / "host.log"
    first = start_host(stack, site, log)
    try:
        wait_for(lambda: all(stack.job(j).status == "running" for j in jobs.values()),
                 timeout=60, interval=0.2, what="every machine printing")
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        stop(first)
    second = start_host(stack, site, log)
    try:
        wait_for(lambda: all(lease_row(stack, d)["fencing_token"] == 2 for d in ids),
                 timeout=60, interval=0.3, what="the next host to take every lease")
        wait_for(lambda: all(stack.job(j).status == "interrupted" for j in jobs.values()),
                 timeout=60, interval=0.3, what="the lost prints interrupted")
        for d in ids:  # repaired, not left busy on a job that no longer runs
            wait_for(lambda d=d: lease_row(stack, d)["state"] in ("needs_bed_clear", "idle"),
                     timeout=30, what=f"{d} repaired")
    finally:
        stop(second)
    for j in jobs.values():
        assert running_count(stack, j) == 1


@needs_prusaslicer
@pytest.mark.host_protocol
def test_a_host_killed_mid_print_reattaches_to_the_live_print(
        stack: Stack, client, tmp_path: Path, prusalink: PrusaLinkPeer) -> None:  # noqa: F811
    """A real PrusaLink keeps printing while the host is dead: the next host re-attaches
    to the print by its name, and it finishes once (as test_dispatch_prusalink.py's killed
    device worker)."""
    from tests.queue.test_dispatch_octoprint import ready_print
    from tests.queue.test_dispatch_prusalink import prusa_printer

    prusalink.hold()  # the print pauses at its first fan-on: mid-print for sure
    dev = f"dp{secrets.token_hex(2)}"
    spec = prusa_printer(dev, prusalink)
    site = new_site(stack, [spec, printer(f"{dev}-sim", ["PETG"])])  # a neighbour
    job, _r, s = ready_print(stack, client, site, tmp_path, size=20)
    env = {spec["api_key_env"]: prusalink.api_key}
    log = tmp_path / "host.log"
    first = start_host(stack, site, log, **env)
    try:
        wait_for(lambda: stack.job(job).status == "running", timeout=90, what="running")
        prusalink.wait_held()
        held = (prusalink.job() or {})["id"]
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        stop(first)
    second = start_host(stack, site, log, **env)
    try:
        wait_for(lambda: "reattached" in actions(stack, job), timeout=60, what="re-attach")
        wait_for(lambda: device(client, s, dev)["state"] == "paused", timeout=30,
                 what="the paused print shown")
        assert (prusalink.job() or {})["id"] == held  # not sent again
        assert client.post(f"/api/devices/{dev}/resume", headers=s).status_code in (200, 202)
        wait_for(lambda: stack.job(job).status in ("done", "failed", "interrupted"),
                 timeout=120, interval=0.3, what="the print to end")
    finally:
        stop(second)
    assert stack.job(job).status == "done", actions(stack, job)
    assert running_count(stack, job) == 1
    assert lease_row(stack, dev)["fencing_token"] == 2


def test_the_host_follows_the_database_and_restarts_a_dead_worker(stack: Stack) -> None:
    """In-process: a worker that fails to start is started again (after a back-off); a
    machine disabled while the host runs loses its thread, which lets go of its lease."""
    import threading

    from fabqueue.queue.device_host import DeviceHost
    from fabqueue.queue.device_worker import DeviceWorker
    from fabqueue.store.models import Device

    dev = f"df{secrets.token_hex(2)}"
    site = new_site(stack, [printer(dev, ["PLA"])])
    made: list[str] = []

    def make(ctx, device_id: str) -> DeviceWorker:  # type: ignore[no-untyped-def]
        made.append(device_id)
        if len(made) == 1:
            raise RuntimeError("the database was away")
        return DeviceWorker(ctx, device_id, poll_s=0.2)

    host = DeviceHost(stack.ctx, site=site, make_worker=make)
    stop_host = threading.Event()
    runner = threading.Thread(target=host.run, args=(stop_host,), daemon=True)
    runner.start()
    try:
        wait_for(lambda: lease_row(stack, dev)["lease_owner"] is not None, timeout=30,
                 interval=0.2, what="the second worker to take the lease")
        assert made == [dev, dev] and host.restarts == 1
        with stack.ctx.db.session() as s:
            d = s.get(Device, dev)
            assert d is not None
            d.enabled = False
        wait_for(lambda: dev not in host.slots and lease_row(stack, dev)["lease_owner"] is None,
                 timeout=30, interval=0.2, what="the disabled machine's thread to stop")
    finally:
        stop_host.set()
        runner.join(timeout=30)
    assert not runner.is_alive()
