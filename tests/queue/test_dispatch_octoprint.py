"""Print jobs end to end on real OctoPrint 1.11 Virtual Printers: sliced, sent, watched live,
and nothing lost or printed twice when OctoPrint or the device worker dies."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import pytest

from tests.conftest import Stack, needs_prusaslicer, wait_for
from tests.octoprint_fixtures import (
    ensure_idle,
    start_instance,
)
from tests.queue.helpers import cube_file, device, device_workers, new_site, upload, wait_status
from tests.queue.host_scenarios import reattach_after_kill

pytestmark = [pytest.mark.octoprint,
              needs_prusaslicer]


def octo_printer(device_id: str, instance, materials=("PLA",)):  # type: ignore[no-untyped-def]
    env_name = f"FABQUEUE_DEVICE_TEST_KEY_{secrets.token_hex(4).upper()}"
    os.environ[env_name] = instance.api_key
    return {"id": device_id, "site": "", "kind": "printer", "driver": "octoprint",
            "url": instance.url, "api_key_env": env_name, "build_volume_mm": (250, 210, 220),
            "materials": list(materials), "profile": "prusa_mk4"}


def ready_print(stack: Stack, client, site: str, tmp: Path, size: float = 10,  # type: ignore[no-untyped-def]
                material: str = "PLA", name: str = "cube.stl"):
    resident, staff = stack.user("resident"), stack.user("staff", site)
    r, s = stack.token(client, resident), stack.token(client, staff)
    job = upload(client, r, cube_file(tmp, size, name), material, site, quality="draft")
    wait_status(client, r, job, {"awaiting_approval"})
    assert client.post(f"/api/jobs/{job}/approve", headers=s).status_code == 200
    wait_status(client, r, job, {"ready"}, timeout=60)
    return job, r, s


def test_sliced_job_prints_to_done_with_live_progress(stack: Stack, client, tmp_path: Path,
                                                      octoprint_instance) -> None:
    ensure_idle(octoprint_instance)
    site = new_site(stack, [octo_printer("op-1", octoprint_instance)])
    job, r, s = ready_print(stack, client, site, tmp_path, size=12)
    progress: list[float] = []
    with device_workers(stack, ["op-1"], poll_s=0.5):
        def finished() -> bool:
            d = device(client, s, "op-1")
            if d["progress"] is not None:
                progress.append(d["progress"])
            return client.get(f"/api/jobs/{job}", headers=r).json()["status"] in (
                "done", "failed", "interrupted")

        wait_for(finished, timeout=120, interval=0.3, what="the print to end")
        dev = wait_for(lambda: (d := device(client, s, "op-1"))["state"] == "needs_bed_clear"
                       and d, timeout=10, what="needs_bed_clear")
    result = client.get(f"/api/jobs/{job}", headers=r).json()
    assert result["status"] == "done", result
    assert dev["job"] == job
    assert any(0 < p < 100 for p in progress), progress
    assert progress == sorted(progress) or max(progress) > progress[0]
    assert stack.job(job).actual_seconds > 0


def test_octoprint_killed_mid_print_interrupts_and_nothing_restarts(
        stack: Stack, client, tmp_path: Path) -> None:
    instance = start_instance(tmp_path / "octo")
    try:
        site = new_site(stack, [octo_printer("op-kill", instance)])
        job, r, s = ready_print(stack, client, site, tmp_path, size=25)
        with device_workers(stack, ["op-kill"], poll_s=0.3):
            wait_status(client, r, job, {"running"}, timeout=30)
            wait_for(lambda: (device(client, s, "op-kill")["progress"] or 0) > 0, timeout=60,
                     what="printing")
            instance.kill()
            stopped = wait_status(client, r, job, {"interrupted"}, timeout=20)
            assert stopped["status"] == "interrupted"
            wait_for(lambda: device(client, s, "op-kill")["state"] == "offline", timeout=10,
                     what="device offline")
            time.sleep(2)
            # never restarted by itself
            assert client.get(f"/api/jobs/{job}", headers=r).json()["status"] == "interrupted"
        # staff decide: fail it
        assert client.post(f"/api/jobs/{job}/fail", headers=s,
                           json={"reason": "printer crashed"}).json()["status"] == "failed"
    finally:
        instance.stop()
    transitions = [e["to"] for e in client.get(f"/api/jobs/{job}/events", headers=r).json()
                   if e["from"] != e["to"]]
    assert transitions.count("running") == 1


def test_killed_device_worker_reattaches_and_the_print_finishes_once(
        stack: Stack, client, tmp_path: Path, octoprint_instance) -> None:
    ensure_idle(octoprint_instance)
    site = new_site(stack, [octo_printer("op-reattach", octoprint_instance)])
    job, r, s = ready_print(stack, client, site, tmp_path, size=20)
    env = dict(stack.env)
    env.update({k: v for k, v in os.environ.items() if k.startswith("FABQUEUE_DEVICE_TEST_KEY_")})

    def still_running() -> None:  # no worker: the job stays running, nothing decides alone
        time.sleep(1)
        assert client.get(f"/api/jobs/{job}", headers=r).json()["status"] == "running"

    reattach_after_kill(client, env, "op-reattach", job, r, s, paused=False,
                        held=lambda: (device(client, s, "op-reattach")["progress"] or 0) > 1,
                        after_kill=still_running)


def test_pool_prints_two_jobs_in_parallel_on_two_octoprints(
        stack: Stack, client, tmp_path: Path, octoprint_pair) -> None:
    a, b = octoprint_pair
    ensure_idle(a)
    ensure_idle(b)
    site = new_site(stack, [octo_printer("op-a", a), octo_printer("op-b", b, ("PLA", "PETG"))])
    j1, r, _s = ready_print(stack, client, site, tmp_path, size=18, name="one.stl")
    j2, r2, _ = ready_print(stack, client, site, tmp_path, size=16, material="PETG",
                            name="two.stl")
    with device_workers(stack, ["op-a", "op-b"], poll_s=0.5):
        wait_for(lambda: client.get(f"/api/jobs/{j1}", headers=r).json()["status"] in (
            "running", "done") and client.get(f"/api/jobs/{j2}", headers=r2).json()[
            "status"] in ("running", "done"), timeout=60, what="both running")
        wait_status(client, r, j1, {"done"}, timeout=120)
        wait_status(client, r2, j2, {"done"}, timeout=120)
    assert client.get(f"/api/jobs/{j2}", headers=r2).json()["device"] == "op-b"  # PETG
    assert client.get(f"/api/jobs/{j1}", headers=r).json()["device"] == "op-a"


def test_bad_api_key_puts_the_printer_in_error_with_a_reason(stack: Stack, client,
                                                              octoprint_instance) -> None:
    spec = octo_printer("op-badkey", octoprint_instance)
    os.environ[spec["api_key_env"]] = "0" * 32
    site = new_site(stack, [spec])
    s = stack.token(client, stack.user("staff", site))
    with device_workers(stack, ["op-badkey"]):
        # a loaded OctoPrint may answer too late for the first polls (offline, retried):
        # the refused key is what it says once it answers
        dev = wait_for(lambda: (d := device(client, s, "op-badkey"))["state"] == "error"
                       and d, timeout=60, what="the key to be refused")
    assert dev["state"] == "error"
    assert "key" in dev["state_reason"].lower() or "403" in dev["state_reason"]
