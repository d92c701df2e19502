"""Print jobs end to end on the real PrusaLink 0.8.1 (in front of our firmware responder):
sliced, sent, watched, and nothing lost or printed twice when the worker or PrusaLink dies."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import pytest

from fabqueue.core.reasons import render
from tests.conftest import Stack, needs_prusaslicer
from tests.prusalink_fixtures import PrusaLinkPeer, prusalink  # noqa: F401
from tests.queue.helpers import new_site
from tests.queue.host_scenarios import (
    first_print_then_interlock,
    host_lost_mid_print,
    reattach_after_kill,
    refused_key,
)
from tests.queue.test_dispatch_octoprint import ready_print

pytestmark = [needs_prusaslicer, pytest.mark.host_protocol]


def prusa_printer(device_id: str, peer: PrusaLinkPeer, key: str | None = None,
                  password: bool = False) -> dict[str, Any]:
    env_name = f"FABQUEUE_DEVICE_TEST_KEY_{secrets.token_hex(4).upper()}"
    os.environ[env_name] = (peer.password if password else key if key is not None
                            else peer.api_key)
    auth = {"password_env": env_name} if password else {"api_key_env": env_name}
    return {"id": device_id, "site": "", "kind": "printer", "driver": "prusalink",
            "url": peer.url, **auth, "build_volume_mm": (250, 210, 210),
            "materials": ["PLA"], "profile": "prusa_mk4"}


def test_sliced_job_prints_to_done_and_the_bed_interlock_holds(
        stack: Stack, client, tmp_path: Path, prusalink: PrusaLinkPeer) -> None:  # noqa: F811
    site = new_site(stack, [prusa_printer("pl-1", prusalink, password=True)])  # digest auth
    job, r, s = ready_print(stack, client, site, tmp_path, size=12)
    second, r2, _ = ready_print(stack, client, site, tmp_path, size=10, name="two.stl")
    done, dev = first_print_then_interlock(stack, client, "pl-1", (job, r), (second, r2), s)
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
    held_job: list[int] = []

    def held() -> bool:
        if prusalink.state() != "PAUSED":
            return False
        held_job.append((prusalink.job() or {})["id"])
        return True

    def not_sent_again() -> None:
        assert (prusalink.job() or {})["id"] == held_job[-1]

    reattach_after_kill(client, {**stack.env, spec["api_key_env"]: prusalink.api_key},
                        "pl-reattach", job, r, s, held=held, while_paused=not_sent_again)


def test_killed_prusalink_interrupts_then_needs_bed_clear(
        stack: Stack, client, tmp_path: Path, prusalink: PrusaLinkPeer) -> None:  # noqa: F811
    prusalink.hold()  # the print pauses at its first fan-on: mid-print for sure
    site = new_site(stack, [prusa_printer("pl-kill", prusalink)])
    job, r, s = ready_print(stack, client, site, tmp_path, size=15)
    waiting, rw, _ = ready_print(stack, client, site, tmp_path, size=10, name="next.stl")

    def back() -> None:
        prusalink.start_link()
        prusalink.wait_ready()

    host_lost_mid_print(stack, client, "pl-kill", (job, r), (waiting, rw), s,
                        held=lambda: prusalink.state() == "PAUSED", kill=prusalink.kill_link,
                        back=back)
    assert prusalink.state() in ("IDLE", "READY")  # PrusaLink restarted nothing


def test_wrong_api_key_puts_the_printer_in_error_with_a_plain_reason(
        stack: Stack, client, prusalink: PrusaLinkPeer) -> None:  # noqa: F811
    site = new_site(stack, [prusa_printer("pl-badkey", prusalink, key="0" * 32)])
    dev = refused_key(stack, client, "pl-badkey", stack.token(client, stack.user("staff", site)))
    assert render(dev["state_reason"]) == ("PrusaLink refused the API key: check the key set "
                                           "for this printer (403)")
