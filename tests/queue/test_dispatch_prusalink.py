"""Print jobs end to end on the real PrusaLink 0.8.1 (in front of our firmware responder):
sliced, sent, watched, and nothing lost or printed twice when the worker or PrusaLink dies."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fabqueue.core.reasons import render
from tests.conftest import Stack, wait_for
from tests.prusalink_fixtures import PrusaLinkPeer, prusalink, prusalink_peer  # noqa: F401
from tests.queue.helpers import device, device_workers, new_site, wait_status
from tests.queue.test_dispatch_octoprint import ready_print

pytestmark = [pytest.mark.skipif(shutil.which("prusa-slicer") is None,
                                 reason="PrusaSlicer is not installed (scripts/setup.sh --test)")]


def prusa_printer(device_id: str, peer: PrusaLinkPeer, key: str | None = None,
                  password: bool = False) -> dict[str, Any]:
    env_name = f"FQ_TEST_KEY_{secrets.token_hex(4).upper()}"
    os.environ[env_name] = (peer.password if password else key if key is not None
                            else peer.api_key)
    auth = {"password_env": env_name} if password else {"api_key_env": env_name}
    return {"id": device_id, "site": "", "kind": "printer", "driver": "prusalink",
            "url": peer.url, **auth, "build_volume_mm": (250, 210, 210),
            "materials": ["PLA"], "profile": "prusa_mk4"}


def transitions(client, headers, job: int) -> list[str]:  # type: ignore[no-untyped-def]
    return [e["to"] for e in client.get(f"/api/jobs/{job}/events", headers=headers).json()
            if e["from"] != e["to"]]


def test_sliced_job_prints_to_done_and_the_bed_interlock_holds(
        stack: Stack, client, tmp_path: Path, prusalink: PrusaLinkPeer) -> None:  # noqa: F811
    site = new_site(stack, [prusa_printer("pl-1", prusalink, password=True)])  # digest auth
    job, r, s = ready_print(stack, client, site, tmp_path, size=12)
    second, r2, _ = ready_print(stack, client, site, tmp_path, size=10, name="two.stl")
    with device_workers(stack, ["pl-1"], poll_s=0.3):
        ok = wait_for(lambda: (t := client.post("/api/devices/pl-1/test", headers=s))
                      .status_code == 200 and t, timeout=30, what="test connection")
        assert ok.json()["ok"] is True
        done = wait_status(client, r, job, {"done", "failed", "interrupted"}, timeout=90)
        dev = wait_for(lambda: (d := device(client, s, "pl-1"))["state"] == "needs_bed_clear"
                       and d, timeout=15, what="needs_bed_clear")
        time.sleep(2)  # the interlock: the second job must not start by itself
        assert client.get(f"/api/jobs/{second}", headers=r2).json()["status"] == "ready"
    assert done["status"] == "done", done
    assert dev["job"] == job
    assert (prusalink.gcodes / f"fq-{job}.gcode").exists()
    assert not (prusalink.gcodes / f"fq-{second}.gcode").exists()


def test_killed_device_worker_reattaches_and_the_print_finishes_once(
        stack: Stack, client, tmp_path: Path, prusalink: PrusaLinkPeer) -> None:  # noqa: F811
    prusalink.hold()
    spec = prusa_printer("pl-reattach", prusalink)
    site = new_site(stack, [spec])
    job, r, s = ready_print(stack, client, site, tmp_path, size=20)
    env = {**stack.env, spec["api_key_env"]: prusalink.api_key}
    cmd = [sys.executable, "-m", "fabqueue", "device-worker", "pl-reattach"]
    first = subprocess.Popen(cmd, env=env)
    try:
        wait_status(client, r, job, {"running"}, timeout=60)
        wait_for(lambda: prusalink.state() == "PAUSED", timeout=90, what="the print held")
        job_id = (prusalink.job() or {})["id"]
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = subprocess.Popen(cmd, env=env)
        try:
            wait_for(lambda: any(e["action"] == "reattached" for e in client.get(
                f"/api/jobs/{job}/events", headers=r).json()), timeout=40, what="re-attach")
            wait_for(lambda: device(client, s, "pl-reattach")["state"] == "paused", timeout=20,
                     what="the paused print shown")
            assert (prusalink.job() or {})["id"] == job_id  # not sent again
            assert client.post("/api/devices/pl-reattach/resume", headers=s).status_code in (
                200, 202)
            done = wait_status(client, r, job, {"done", "failed", "interrupted"}, timeout=90)
        finally:
            second.terminate()
            second.wait(timeout=15)
    finally:
        if first.poll() is None:
            first.kill()
    assert done["status"] == "done", done
    assert transitions(client, r, job).count("running") == 1


def test_killed_prusalink_interrupts_then_needs_bed_clear(
        stack: Stack, client, tmp_path: Path, prusalink: PrusaLinkPeer) -> None:  # noqa: F811
    prusalink.hold()  # the print pauses at its first fan-on: mid-print for sure
    site = new_site(stack, [prusa_printer("pl-kill", prusalink)])
    job, r, s = ready_print(stack, client, site, tmp_path, size=15)
    waiting, rw, _ = ready_print(stack, client, site, tmp_path, size=10, name="next.stl")
    with device_workers(stack, ["pl-kill"], poll_s=0.3):
        wait_for(lambda: prusalink.state() == "PAUSED", timeout=90, what="the print held")
        prusalink.kill_link()
        stopped = wait_status(client, r, job, {"interrupted", "failed", "done"}, timeout=30)
        assert stopped["status"] == "interrupted", stopped
        dev = wait_for(lambda: (d := device(client, s, "pl-kill"))["state"] in (
            "offline", "needs_bed_clear") and d, timeout=20, what="the printer offline")
        assert dev["state_reason"]
        prusalink.start_link()  # back again: the bed still holds the lost print
        prusalink.wait_ready()
        wait_for(lambda: device(client, s, "pl-kill")["state"] == "needs_bed_clear",
                 timeout=40, what="needs_bed_clear after PrusaLink is back")
        time.sleep(2)
        assert client.get(f"/api/jobs/{job}", headers=r).json()["status"] == "interrupted"
        assert client.get(f"/api/jobs/{waiting}", headers=rw).json()["status"] == "ready"
        assert prusalink.state() in ("IDLE", "READY")  # PrusaLink restarted nothing
    assert transitions(client, r, job).count("running") == 1


def test_wrong_api_key_puts_the_printer_in_error_with_a_plain_reason(
        stack: Stack, client, prusalink: PrusaLinkPeer) -> None:  # noqa: F811
    site = new_site(stack, [prusa_printer("pl-badkey", prusalink, key="0" * 32)])
    s = stack.token(client, stack.user("staff", site))
    with device_workers(stack, ["pl-badkey"]):
        dev = wait_for(lambda: (d := device(client, s, "pl-badkey"))["state"] in (
            "error", "offline") and d["state_reason"] not in (None, "starting") and d, timeout=20,
            what="the key to be refused")
    assert dev["state"] == "error"
    assert render(dev["state_reason"]) == ("PrusaLink refused the API key: check the key set "
                                           "for this printer (403)")
