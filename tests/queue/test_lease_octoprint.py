"""One driver per machine on a real OctoPrint 1.11 Virtual Printer: two device-worker
processes for one printer; the one without the lease waits; when the holder is killed (or
paused past its lease) the other takes over and re-attaches to the print that is running,
and the print is started once, counted on the printer (OctoPrint's own per-file history)."""

from __future__ import annotations

import os
import secrets
import signal
from pathlib import Path

import pytest

from fabqueue.drivers.octoprint import remote_name
from fabqueue.queue.device_worker import job_name
from tests.conftest import Stack, needs_prusaslicer, wait_for
from tests.octoprint_fixtures import (
    ensure_idle,
    octoprint_instance_module,
)
from tests.queue.helpers import device, new_site, wait_status
from tests.queue.lease_procs import WorkerProc, lease_row, start_worker
from tests.queue.test_dispatch_octoprint import octo_printer, ready_print

pytestmark = [pytest.mark.octoprint,
              needs_prusaslicer]


def prints_on_printer(instance, job: int) -> int:  # type: ignore[no-untyped-def]
    """How many times OctoPrint ran the job's file (finished or not), by its own count."""
    status, info = octoprint_instance_module.request(
        f"{instance.url}/api/files/local/fabqueue/{remote_name(job_name(job))}",
        instance.api_key)
    assert status == 200, info
    prints = info.get("prints") or {}  # type: ignore[union-attr]
    return int(prints.get("success", 0) or 0) + int(prints.get("failure", 0) or 0)


def _two_workers(stack: Stack, dev: str) -> tuple[WorkerProc, WorkerProc]:
    a = start_worker(stack, dev, "a")
    wait_for(lambda: a.holds(stack, dev), timeout=30, what="a to take the lease")
    b = start_worker(stack, dev, "b")
    wait_for(lambda: "waiting: the machine is driven by" in b.text(), timeout=30,
             what="b to say it waits")
    return a, b


def _check_once(client, r, job: int, instance) -> None:  # type: ignore[no-untyped-def]
    events = client.get(f"/api/jobs/{job}/events", headers=r).json()
    assert any(e["action"] == "reattached" for e in events)
    assert [e["to"] for e in events if e["from"] != e["to"]].count("running") == 1
    assert prints_on_printer(instance, job) == 1


def test_killed_holder_the_waiting_worker_reattaches_and_it_prints_once(
        stack: Stack, client, tmp_path: Path, octoprint_instance) -> None:
    ensure_idle(octoprint_instance)
    dev = f"olk-{secrets.token_hex(2)}"
    site = new_site(stack, [octo_printer(dev, octoprint_instance)])
    job, r, s = ready_print(stack, client, site, tmp_path, size=20)
    a, b = _two_workers(stack, dev)
    try:
        wait_status(client, r, job, {"running"}, timeout=40)
        wait_for(lambda: (device(client, s, dev)["progress"] or 0) > 1, timeout=60,
                 what="printing")
        assert f"{dev}: connected" not in b.text()  # the waiting one never touched it
        token = lease_row(stack, dev)["fencing_token"]
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait()
        wait_for(lambda: b.holds(stack, dev), timeout=30, what="b to take over")
        assert lease_row(stack, dev)["fencing_token"] == token + 1
        done = wait_status(client, r, job, {"done", "failed", "interrupted"}, timeout=120)
    finally:
        a.stop()
        b.stop()
    assert done["status"] == "done", done
    _check_once(client, r, job, octoprint_instance)


def test_paused_holder_loses_the_lease_and_leaves_the_print_alone(
        stack: Stack, client, tmp_path: Path, octoprint_instance) -> None:
    ensure_idle(octoprint_instance)
    dev = f"olp-{secrets.token_hex(2)}"
    site = new_site(stack, [octo_printer(dev, octoprint_instance)])
    job, r, s = ready_print(stack, client, site, tmp_path, size=20)
    a, b = _two_workers(stack, dev)
    try:
        wait_status(client, r, job, {"running"}, timeout=40)
        wait_for(lambda: (device(client, s, dev)["progress"] or 0) > 1, timeout=60,
                 what="printing")
        os.kill(a.pid, signal.SIGSTOP)
        wait_for(lambda: b.holds(stack, dev), timeout=30, what="b to take over")
        wait_for(lambda: f"{dev}: re-attached to job {job}" in b.text(), timeout=30,
                 what="b to re-attach")
        os.kill(a.pid, signal.SIGCONT)
        wait_for(lambda: "lease lost" in a.text(), timeout=30,
                 what="a to notice it lost the lease")
        done = wait_status(client, r, job, {"done", "failed", "interrupted", "cancelled"},
                           timeout=120)
        assert a.proc.poll() is None  # a waits again; it did not die
        assert b.holds(stack, dev)
    finally:
        a.stop()
        b.stop()
    # a stopped driving without cancelling: the print b re-attached to ran to its end, once
    assert done["status"] == "done", done
    assert "ended" not in a.text().split("lease lost", 1)[1]
    _check_once(client, r, job, octoprint_instance)
