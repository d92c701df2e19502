"""Print jobs end to end on a real Klipper (Moonraker 0.11 + Klippy in batch mode): sliced,
sent, watched, and nothing lost or printed twice when the worker, Klippy or Moonraker dies."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import pytest

from fabqueue.core.reasons import render
from tests.conftest import Stack, needs_prusaslicer, wait_for
from tests.klipper_fixtures import KlipperPeer, klipper  # noqa: F401
from tests.queue.helpers import new_site
from tests.queue.host_scenarios import (
    first_print_then_interlock,
    host_lost_mid_print,
    reattach_after_kill,
    refused_key,
)
from tests.queue.test_dispatch_octoprint import ready_print

pytestmark = [needs_prusaslicer, pytest.mark.host_protocol]


def klipper_printer(device_id: str, peer: KlipperPeer, key: str | None = None,
                    materials: tuple[str, ...] = ("PLA",)) -> dict[str, Any]:
    env_name = f"FABQUEUE_DEVICE_TEST_KEY_{secrets.token_hex(4).upper()}"
    os.environ[env_name] = key if key is not None else peer.api_key
    return {"id": device_id, "site": "", "kind": "printer", "driver": "moonraker",
            "url": peer.url, "api_key_env": env_name, "build_volume_mm": (250, 210, 220),
            "materials": list(materials), "profile": "prusa_mk4"}


def test_sliced_job_prints_to_done_and_the_bed_interlock_holds(
        stack: Stack, client, tmp_path: Path, klipper: KlipperPeer) -> None:  # noqa: F811
    site = new_site(stack, [klipper_printer("kl-1", klipper)])
    job, r, s = ready_print(stack, client, site, tmp_path, size=12)
    second, r2, _ = ready_print(stack, client, site, tmp_path, size=10, name="two.stl")
    done, dev = first_print_then_interlock(stack, client, "kl-1", (job, r), (second, r2), s)
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
    reattach_after_kill(client, {**stack.env, spec["api_key_env"]: klipper.api_key},
                        "kl-reattach", job, r, s,
                        held=lambda: klipper.print_state()["state"] == "paused",
                        after_kill=lambda: klipper.hold(False))
    wait_for(lambda: klipper.jobs_in_history(f"fabqueue/fq-{job}.gcode"), what="history")
    assert len(klipper.jobs_in_history(f"fabqueue/fq-{job}.gcode")) == 1  # started once


@pytest.mark.parametrize("kill", ["klippy", "moonraker"])
def test_host_killed_mid_print_interrupts_then_needs_bed_clear(
        stack: Stack, client, tmp_path: Path, klipper: KlipperPeer, kill: str) -> None:  # noqa: F811
    klipper.hold()
    site = new_site(stack, [klipper_printer(f"kl-{kill}", klipper)])
    job, r, s = ready_print(stack, client, site, tmp_path, size=15)
    waiting, rw, _ = ready_print(stack, client, site, tmp_path, size=10, name="next.stl")

    def back() -> None:
        klipper.start_klippy() if kill == "klippy" else klipper.start_moonraker()
        klipper.wait_ready()

    host_lost_mid_print(stack, client, f"kl-{kill}", (job, r), (waiting, rw), s,
                        held=lambda: klipper.print_state()["state"] == "paused",
                        kill=klipper.kill_klippy if kill == "klippy" else klipper.kill_moonraker,
                        back=back)
    # a new Klippy forgot the print; a Klippy that outlived Moonraker still holds it paused
    # (staff decide): FabQueue resumed or restarted nothing
    assert klipper.print_state()["state"] == ("standby" if kill == "klippy" else "paused")


def test_wrong_api_key_puts_the_printer_in_error_with_a_plain_reason(
        stack: Stack, client, klipper: KlipperPeer) -> None:  # noqa: F811
    site = new_site(stack, [klipper_printer("kl-badkey", klipper, key="0" * 32)])
    dev = refused_key(stack, client, "kl-badkey", stack.token(client, stack.user("staff", site)))
    assert render(dev["state_reason"]) == ("Moonraker refused the API key: check the key set "
                                           "for this printer (401)")
