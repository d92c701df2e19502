"""Print jobs end to end on a real Klipper (Moonraker 0.11 + Klippy in batch mode): sliced,
sent, watched, and nothing lost or printed twice when the worker, Klippy or Moonraker dies."""

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
from tests.klipper_fixtures import KlipperPeer, klipper, klipper_peer  # noqa: F401
from tests.queue.helpers import device, device_workers, new_site, wait_status
from tests.queue.test_dispatch_octoprint import ready_print

pytestmark = [pytest.mark.skipif(shutil.which("prusa-slicer") is None,
                                 reason="PrusaSlicer is not installed (scripts/setup.sh --test)")]


def klipper_printer(device_id: str, peer: KlipperPeer, key: str | None = None,
                    materials: tuple[str, ...] = ("PLA",)) -> dict[str, Any]:
    env_name = f"FQ_TEST_KEY_{secrets.token_hex(4).upper()}"
    os.environ[env_name] = key if key is not None else peer.api_key
    return {"id": device_id, "site": "", "kind": "printer", "driver": "moonraker",
            "url": peer.url, "api_key_env": env_name, "build_volume_mm": (250, 210, 220),
            "materials": list(materials), "profile": "prusa_mk4"}


def transitions(client, headers, job: int) -> list[str]:  # type: ignore[no-untyped-def]
    return [e["to"] for e in client.get(f"/api/jobs/{job}/events", headers=headers).json()
            if e["from"] != e["to"]]


def test_sliced_job_prints_to_done_and_the_bed_interlock_holds(
        stack: Stack, client, tmp_path: Path, klipper: KlipperPeer) -> None:  # noqa: F811
    site = new_site(stack, [klipper_printer("kl-1", klipper)])
    job, r, s = ready_print(stack, client, site, tmp_path, size=12)
    second, r2, _ = ready_print(stack, client, site, tmp_path, size=10, name="two.stl")
    with device_workers(stack, ["kl-1"], poll_s=0.3):
        ok = wait_for(lambda: (t := client.post("/api/devices/kl-1/test", headers=s))
                      .status_code == 200 and t, timeout=30, what="test connection")
        assert ok.json()["ok"] is True
        done = wait_status(client, r, job, {"done", "failed", "interrupted"}, timeout=60)
        dev = wait_for(lambda: (d := device(client, s, "kl-1"))["state"] == "needs_bed_clear"
                       and d, timeout=15, what="needs_bed_clear")
        time.sleep(2)  # the interlock: the second job must not start by itself
        assert client.get(f"/api/jobs/{second}", headers=r2).json()["status"] == "ready"
    assert done["status"] == "done", done
    assert dev["job"] == job
    files = [j["filename"] for j in klipper.call("GET", "/server/history/list?limit=50")["jobs"]]
    assert files.count(f"fabqueue/fq-{job}.gcode") <= 1  # short jobs may miss history
    assert klipper.print_state()["filename"] == f"fabqueue/fq-{job}.gcode"


def test_killed_device_worker_reattaches_and_the_print_finishes_once(
        stack: Stack, client, tmp_path: Path, klipper: KlipperPeer) -> None:  # noqa: F811
    klipper.hold()  # the print pauses at its first fan-on: mid-print for sure
    spec = klipper_printer("kl-reattach", klipper)
    site = new_site(stack, [spec])
    job, r, s = ready_print(stack, client, site, tmp_path, size=20)
    env = {**stack.env, spec["api_key_env"]: klipper.api_key}
    cmd = [sys.executable, "-m", "fabqueue", "device-worker", "kl-reattach"]
    first = subprocess.Popen(cmd, env=env)
    try:
        wait_status(client, r, job, {"running"}, timeout=40)
        wait_for(lambda: klipper.print_state()["state"] == "paused", timeout=40,
                 what="the print held mid-way")
        first.send_signal(signal.SIGKILL)
        first.wait()
        klipper.hold(False)
        second = subprocess.Popen(cmd, env=env)
        try:
            wait_for(lambda: any(e["action"] == "reattached" for e in client.get(
                f"/api/jobs/{job}/events", headers=r).json()), timeout=40, what="re-attach")
            wait_for(lambda: device(client, s, "kl-reattach")["state"] == "paused", timeout=20,
                     what="the paused print shown")
            assert client.post("/api/devices/kl-reattach/resume", headers=s).status_code in (
                200, 202)
            done = wait_status(client, r, job, {"done", "failed", "interrupted"}, timeout=60)
        finally:
            second.terminate()
            second.wait(timeout=15)
    finally:
        if first.poll() is None:
            first.kill()
    assert done["status"] == "done", done
    assert transitions(client, r, job).count("running") == 1
    wait_for(lambda: klipper.jobs_in_history(f"fabqueue/fq-{job}.gcode"), what="history")
    assert len(klipper.jobs_in_history(f"fabqueue/fq-{job}.gcode")) == 1  # started once


@pytest.mark.parametrize("kill", ["klippy", "moonraker"])
def test_host_killed_mid_print_interrupts_then_needs_bed_clear(
        stack: Stack, client, tmp_path: Path, klipper: KlipperPeer, kill: str) -> None:  # noqa: F811
    klipper.hold()
    site = new_site(stack, [klipper_printer(f"kl-{kill}", klipper)])
    job, r, s = ready_print(stack, client, site, tmp_path, size=15)
    waiting, rw, _ = ready_print(stack, client, site, tmp_path, size=10, name="next.stl")
    with device_workers(stack, [f"kl-{kill}"], poll_s=0.3):
        wait_for(lambda: klipper.print_state()["state"] == "paused", timeout=60,
                 what="the print held mid-way")
        klipper.kill_klippy() if kill == "klippy" else klipper.kill_moonraker()
        stopped = wait_status(client, r, job, {"interrupted", "failed", "done"}, timeout=30)
        assert stopped["status"] == "interrupted", stopped
        dev = wait_for(lambda: (d := device(client, s, f"kl-{kill}"))["state"] in (
            "offline", "needs_bed_clear") and d, timeout=20, what="the printer offline")
        assert dev["state_reason"]
        # back again: the bed still holds the lost print, nothing starts by itself
        if kill == "klippy":
            klipper.start_klippy()
        else:
            klipper.start_moonraker()
        klipper.wait_ready()
        wait_for(lambda: device(client, s, f"kl-{kill}")["state"] == "needs_bed_clear",
                 timeout=30, what="needs_bed_clear after the host is back")
        time.sleep(2)
        assert client.get(f"/api/jobs/{job}", headers=r).json()["status"] == "interrupted"
        assert client.get(f"/api/jobs/{waiting}", headers=rw).json()["status"] == "ready"
        # a new Klippy forgot the print; a Klippy that outlived Moonraker still holds it paused
        # (staff decide): FabQueue resumed or restarted nothing
        assert klipper.print_state()["state"] == ("standby" if kill == "klippy" else "paused")
    assert transitions(client, r, job).count("running") == 1


def test_wrong_api_key_puts_the_printer_in_error_with_a_plain_reason(
        stack: Stack, client, klipper: KlipperPeer) -> None:  # noqa: F811
    site = new_site(stack, [klipper_printer("kl-badkey", klipper, key="0" * 32)])
    s = stack.token(client, stack.user("staff", site))
    with device_workers(stack, ["kl-badkey"]):
        dev = wait_for(lambda: (d := device(client, s, "kl-badkey"))["state"] in (
            "error", "offline") and d["state_reason"] not in (None, "starting") and d, timeout=20,
            what="the key to be refused")
    assert dev["state"] == "error"
    assert render(dev["state_reason"]) == ("Moonraker refused the API key: check the key set "
                                           "for this printer (401)")
