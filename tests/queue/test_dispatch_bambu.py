"""Print jobs end to end on a simulated Bambu Lab printer (real mosquitto with TLS, real
implicit FTPS; the printer's logic is fabqueue.simulators.bambu: no real peer can run here):
sliced, sent, watched, and nothing lost or printed twice when the worker or printer dies."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import pytest

from fabqueue.core.reasons import render
from tests.bambu_fixtures import BambuPeer, bambu  # noqa: F401
from tests.conftest import Stack, needs_prusaslicer, wait_for
from tests.queue.helpers import device, device_workers, new_site, wait_status
from tests.queue.host_scenarios import (
    ENDED,
    first_print_then_interlock,
    host_lost_mid_print,
    reattach_after_kill,
    refused_key,
    status,
)
from tests.queue.test_dispatch_octoprint import ready_print

pytestmark = [needs_prusaslicer, pytest.mark.host_protocol]


def bambu_printer(device_id: str, peer: BambuPeer, code: str | None = None) -> dict[str, Any]:
    env_name = f"FABQUEUE_DEVICE_TEST_CODE_{secrets.token_hex(4).upper()}"
    os.environ[env_name] = code if code is not None else peer.access_code
    return {"id": device_id, "site": "", "kind": "printer", "driver": "bambu",
            "host": "127.0.0.1", "serial": peer.serial, "access_code_env": env_name,
            "mqtt_port": peer.mqtt_port, "ftps_port": peer.ftps_port,
            "build_volume_mm": (256, 256, 256), "materials": ["PLA"], "profile": "prusa_mk4"}


@pytest.mark.stack
def test_sliced_job_prints_to_done_and_the_bed_interlock_holds(
        stack: Stack, client, tmp_path: Path, bambu: BambuPeer) -> None:  # noqa: F811
    site = new_site(stack, [bambu_printer("bb-1", bambu)])
    job, r, s = ready_print(stack, client, site, tmp_path, size=12)
    second, r2, _ = ready_print(stack, client, site, tmp_path, size=10, name="two.stl")
    progress: list[float] = []

    def board(d: dict[str, Any]) -> None:
        if d["progress"] is not None:
            progress.append(d["progress"])

    done, dev = first_print_then_interlock(stack, client, "bb-1", (job, r), (second, r2), s,
                                           each_poll=board)
    assert done["status"] == "done", done
    assert dev["job"] == job
    assert progress and 0 <= min(progress) <= max(progress) <= 100  # live on the board
    assert bambu.starts(f"fq-{job}.gcode") == 1 and bambu.starts(f"fq-{second}.gcode") == 0
    assert bambu.state()["gcode_state"] == "FINISH"
    assert (bambu.sd / f"fq-{job}.gcode").stat().st_size > 1000  # the sliced G-code


@pytest.mark.stack
def test_the_next_program_is_on_the_printer_before_the_bed_clear_and_sent_once(
        stack: Stack, client, tmp_path: Path, bambu: BambuPeer) -> None:  # noqa: F811
    """Pre-staging (fabqueue/queue/staging.py) on the printer's own SD card: while the bed
    waits, the next job's program is uploaded and nothing moves; the bed-clear starts it
    with the print command alone."""
    site = new_site(stack, [bambu_printer("bb-pre", bambu)])
    first, r, s = ready_print(stack, client, site, tmp_path, size=10)
    second, r2, _ = ready_print(stack, client, site, tmp_path, size=8, name="two.stl")
    name = f"fq-{second}.gcode"
    with device_workers(stack, ["bb-pre"], poll_s=0.3):
        wait_for(lambda: status(client, r, first) in ENDED, timeout=90, what="the first print")
        wait_for(lambda: device(client, s, "bb-pre")["state"] == "needs_bed_clear",
                 timeout=15, what="needs_bed_clear")
        wait_for(lambda: name in bambu.uploads, timeout=30, what="the next program pre-staged")
        assert status(client, r2, second) == "ready" and bambu.starts(name) == 0
        assert bambu.state()["gcode_state"] == "FINISH"  # the upload moved nothing
        assert client.post("/api/devices/bb-pre/bed-cleared", headers=s,
                           json={"job": first}).status_code == 200
        wait_status(client, r2, second, {"running", "done"}, timeout=60)
        wait_for(lambda: bambu.starts(name) == 1, timeout=30, what="the printer to start it")
    assert bambu.uploads.count(name) == 1  # the start was the print command alone
    assert (bambu.sd / name).stat().st_size > 1000


@pytest.mark.stack
def test_killed_device_worker_reattaches_and_the_print_finishes_once(
        stack: Stack, client, tmp_path: Path, bambu: BambuPeer) -> None:  # noqa: F811
    bambu.printer.hold = True  # the print pauses at its first fan-on: mid-print for sure
    spec = bambu_printer("bb-reattach", bambu)
    site = new_site(stack, [spec])
    job, r, s = ready_print(stack, client, site, tmp_path, size=20)
    reattach_after_kill(client, {**stack.env, spec["access_code_env"]: bambu.access_code},
                        "bb-reattach", job, r, s,
                        held=lambda: bambu.state()["gcode_state"] == "PAUSE")
    assert bambu.starts(f"fq-{job}.gcode") == 1  # started once


@pytest.mark.stack
def test_printer_switched_off_mid_print_interrupts_then_needs_bed_clear(
        stack: Stack, client, tmp_path: Path, bambu: BambuPeer) -> None:  # noqa: F811
    bambu.printer.hold = True
    site = new_site(stack, [bambu_printer("bb-off", bambu)])
    job, r, s = ready_print(stack, client, site, tmp_path, size=15)
    waiting, rw, _ = ready_print(stack, client, site, tmp_path, size=10, name="next.stl")
    host_lost_mid_print(stack, client, "bb-off", (job, r), (waiting, rw), s,
                        held=lambda: bambu.state()["gcode_state"] == "PAUSE",
                        kill=bambu.power_off, back=bambu.power_on)
    assert bambu.state()["gcode_state"] == "IDLE"  # FabQueue restarted nothing
    assert bambu.starts(f"fq-{job}.gcode") == 1 and bambu.starts(f"fq-{waiting}.gcode") == 0


@pytest.mark.stack
def test_wrong_access_code_puts_the_printer_in_error_with_a_plain_reason(
        stack: Stack, client, bambu: BambuPeer) -> None:  # noqa: F811
    wrong = "00000000" if bambu.access_code != "00000000" else "11111111"
    site = new_site(stack, [bambu_printer("bb-badcode", bambu, code=wrong)])
    dev = refused_key(stack, client, "bb-badcode", stack.token(client, stack.user("staff", site)))
    assert render(dev["state_reason"]).startswith(
        "the printer refused the access code: check the code set for this printer")
