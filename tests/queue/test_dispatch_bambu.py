"""Print jobs end to end on a simulated Bambu Lab printer (real mosquitto with TLS, real
implicit FTPS; the printer's logic is fabqueue.simulators.bambu: no real peer can run here):
sliced, sent, watched, and nothing lost or printed twice when the worker or printer dies."""

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
from tests.bambu_fixtures import BambuPeer, bambu, bambu_peer  # noqa: F401
from tests.conftest import Stack, wait_for
from tests.queue.helpers import device, device_workers, new_site, wait_status
from tests.queue.test_dispatch_octoprint import ready_print

pytestmark = [pytest.mark.skipif(shutil.which("prusa-slicer") is None,
                                 reason="PrusaSlicer is not installed (scripts/setup.sh --test)")]


def bambu_printer(device_id: str, peer: BambuPeer, code: str | None = None) -> dict[str, Any]:
    env_name = f"FQ_TEST_CODE_{secrets.token_hex(4).upper()}"
    os.environ[env_name] = code if code is not None else peer.access_code
    return {"id": device_id, "site": "", "kind": "printer", "driver": "bambu",
            "host": "127.0.0.1", "serial": peer.serial, "access_code_env": env_name,
            "mqtt_port": peer.mqtt_port, "ftps_port": peer.ftps_port,
            "build_volume_mm": (256, 256, 256), "materials": ["PLA"], "profile": "prusa_mk4"}


def transitions(client, headers, job: int) -> list[str]:  # type: ignore[no-untyped-def]
    return [e["to"] for e in client.get(f"/api/jobs/{job}/events", headers=headers).json()
            if e["from"] != e["to"]]


@pytest.mark.stack
def test_sliced_job_prints_to_done_and_the_bed_interlock_holds(
        stack: Stack, client, tmp_path: Path, bambu: BambuPeer) -> None:  # noqa: F811
    site = new_site(stack, [bambu_printer("bb-1", bambu)])
    job, r, s = ready_print(stack, client, site, tmp_path, size=12)
    second, r2, _ = ready_print(stack, client, site, tmp_path, size=10, name="two.stl")
    progress: list[float] = []
    with device_workers(stack, ["bb-1"], poll_s=0.3):
        ok = wait_for(lambda: (t := client.post("/api/devices/bb-1/test", headers=s))
                      .status_code == 200 and t, timeout=30, what="test connection")
        assert ok.json()["ok"] is True

        def ended() -> dict[str, Any] | None:
            d = device(client, s, "bb-1")
            if d["progress"] is not None:
                progress.append(d["progress"])
            j = client.get(f"/api/jobs/{job}", headers=r).json()
            return j if j["status"] in ("done", "failed", "interrupted") else None

        done = wait_for(ended, timeout=90, interval=0.2, what="the print to end")
        dev = wait_for(lambda: (d := device(client, s, "bb-1"))["state"] == "needs_bed_clear"
                       and d, timeout=15, what="needs_bed_clear")
        time.sleep(2)  # the interlock: the second job must not start by itself
        assert client.get(f"/api/jobs/{second}", headers=r2).json()["status"] == "ready"
    assert done["status"] == "done", done
    assert dev["job"] == job
    assert bambu.starts(f"fq-{job}.gcode") == 1 and bambu.starts(f"fq-{second}.gcode") == 0
    assert bambu.state()["gcode_state"] == "FINISH"
    assert (bambu.sd / f"fq-{job}.gcode").stat().st_size > 1000  # the sliced G-code


@pytest.mark.stack
def test_killed_device_worker_reattaches_and_the_print_finishes_once(
        stack: Stack, client, tmp_path: Path, bambu: BambuPeer) -> None:  # noqa: F811
    bambu.printer.hold = True  # the print pauses at its first fan-on: mid-print for sure
    spec = bambu_printer("bb-reattach", bambu)
    site = new_site(stack, [spec])
    job, r, s = ready_print(stack, client, site, tmp_path, size=20)
    env = {**stack.env, spec["access_code_env"]: bambu.access_code}
    cmd = [sys.executable, "-m", "fabqueue", "device-worker", "bb-reattach"]
    first = subprocess.Popen(cmd, env=env)
    try:
        wait_status(client, r, job, {"running"}, timeout=40)
        wait_for(lambda: bambu.state()["gcode_state"] == "PAUSE", timeout=40,
                 what="the print held mid-way")
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = subprocess.Popen(cmd, env=env)
        try:
            wait_for(lambda: any(e["action"] == "reattached" for e in client.get(
                f"/api/jobs/{job}/events", headers=r).json()), timeout=40, what="re-attach")
            wait_for(lambda: device(client, s, "bb-reattach")["state"] == "paused", timeout=20,
                     what="the paused print shown")
            assert client.post("/api/devices/bb-reattach/resume", headers=s).status_code in (
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
    assert bambu.starts(f"fq-{job}.gcode") == 1  # started once


@pytest.mark.stack
def test_printer_switched_off_mid_print_interrupts_then_needs_bed_clear(
        stack: Stack, client, tmp_path: Path, bambu: BambuPeer) -> None:  # noqa: F811
    bambu.printer.hold = True
    site = new_site(stack, [bambu_printer("bb-off", bambu)])
    job, r, s = ready_print(stack, client, site, tmp_path, size=15)
    waiting, rw, _ = ready_print(stack, client, site, tmp_path, size=10, name="next.stl")
    with device_workers(stack, ["bb-off"], poll_s=0.3):
        wait_for(lambda: bambu.state()["gcode_state"] == "PAUSE", timeout=60,
                 what="the print held mid-way")
        bambu.power_off()
        stopped = wait_status(client, r, job, {"interrupted", "failed", "done"}, timeout=30)
        assert stopped["status"] == "interrupted", stopped
        dev = wait_for(lambda: (d := device(client, s, "bb-off"))["state"] in (
            "offline", "needs_bed_clear") and d, timeout=20, what="the printer offline")
        assert dev["state_reason"]
        bambu.power_on()  # back again: the bed still holds the lost print
        wait_for(lambda: device(client, s, "bb-off")["state"] == "needs_bed_clear",
                 timeout=40, what="needs_bed_clear after the printer is back")
        time.sleep(2)
        assert client.get(f"/api/jobs/{job}", headers=r).json()["status"] == "interrupted"
        assert client.get(f"/api/jobs/{waiting}", headers=rw).json()["status"] == "ready"
        assert bambu.state()["gcode_state"] == "IDLE"  # FabQueue restarted nothing
    assert transitions(client, r, job).count("running") == 1
    assert bambu.starts(f"fq-{job}.gcode") == 1 and bambu.starts(f"fq-{waiting}.gcode") == 0


@pytest.mark.stack
def test_wrong_access_code_puts_the_printer_in_error_with_a_plain_reason(
        stack: Stack, client, bambu: BambuPeer) -> None:  # noqa: F811
    wrong = "00000000" if bambu.access_code != "00000000" else "11111111"
    site = new_site(stack, [bambu_printer("bb-badcode", bambu, code=wrong)])
    s = stack.token(client, stack.user("staff", site))
    with device_workers(stack, ["bb-badcode"]):
        dev = wait_for(lambda: (d := device(client, s, "bb-badcode"))["state"] in (
            "error", "offline") and d["state_reason"] not in (None, "starting") and d, timeout=20,
            what="the code to be refused")
    assert dev["state"] == "error"
    assert render(dev["state_reason"]).startswith(
        "the printer refused the access code: check the code set for this printer")
