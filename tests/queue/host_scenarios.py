"""The scenarios every printer host goes through end to end (tests/queue/test_dispatch_*.py):
a first print and the bed-clear interlock, a device worker killed mid-print and re-attached,
the host lost mid-print, a refused key. Each test brings its host and what it checks on it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Stack, wait_for
from tests.queue.helpers import device, device_workers, wait_status

ENDED = {"done", "failed", "interrupted"}


def transitions(client: TestClient, headers: dict[str, str], job: int) -> list[str]:
    return [e["to"] for e in client.get(f"/api/jobs/{job}/events", headers=headers).json()
            if e["from"] != e["to"]]


def status(client: TestClient, headers: dict[str, str], job: int) -> str:
    return str(client.get(f"/api/jobs/{job}", headers=headers).json()["status"])


def first_print_then_interlock(
        stack: Stack, client: TestClient, device_id: str, job: tuple[int, dict[str, str]],
        second: tuple[int, dict[str, str]], staff: dict[str, str], *, timeout: float = 90,
        each_poll: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Test connection, the first job printed to its end, the machine waiting for its bed
    to be cleared while the second job stays ready. (The ended job, the device.)"""
    (job_id, owner), (second_id, second_owner) = job, second
    with device_workers(stack, [device_id], poll_s=0.3):
        ok = wait_for(lambda: (t := client.post(f"/api/devices/{device_id}/test",
                                                headers=staff)).status_code == 200 and t,
                      timeout=30, what="test connection")
        assert ok.json()["ok"] is True

        def ended() -> dict[str, Any] | None:
            if each_poll is not None:
                each_poll(device(client, staff, device_id))
            j = client.get(f"/api/jobs/{job_id}", headers=owner).json()
            return j if j["status"] in ENDED else None

        done = wait_for(ended, timeout=timeout, interval=0.2, what="the print to end")
        dev = wait_for(lambda: (d := device(client, staff, device_id))["state"]
                       == "needs_bed_clear" and d, timeout=15, what="needs_bed_clear")
        time.sleep(2)  # the interlock: the second job must not start by itself
        assert status(client, second_owner, second_id) == "ready"
    return done, dev


def reattach_after_kill(
        client: TestClient, env: dict[str, str], device_id: str, job: int,
        owner: dict[str, str], staff: dict[str, str], *, held: Callable[[], bool],
        after_kill: Callable[[], None] = lambda: None,
        while_paused: Callable[[], None] = lambda: None, paused: bool = True,
        timeout: float = 60,
) -> dict[str, Any]:
    """A device-worker process SIGKILLed mid-print (``held``: the print is far enough);
    a new one re-attaches and, when the print was held ``paused``, shows it paused and
    resumes it on staff's word. The ended job."""
    cmd = [sys.executable, "-m", "fabqueue", "device-worker", device_id]
    first = subprocess.Popen(cmd, env=env)
    try:
        wait_status(client, owner, job, {"running"}, timeout=timeout)
        wait_for(held, timeout=90, what="the print held mid-way")
        first.send_signal(signal.SIGKILL)
        first.wait()
        after_kill()
        second = subprocess.Popen(cmd, env=env)
        try:
            wait_for(lambda: any(e["action"] == "reattached" for e in client.get(
                f"/api/jobs/{job}/events", headers=owner).json()), timeout=40,
                what="re-attach")
            if paused:
                wait_for(lambda: device(client, staff, device_id)["state"] == "paused",
                         timeout=20, what="the paused print shown")
                while_paused()
                r = client.post(f"/api/devices/{device_id}/resume", headers=staff)
                assert r.status_code in (200, 202), r.text
            done = wait_status(client, owner, job, ENDED, timeout=120)
        finally:
            second.terminate()
            second.wait(timeout=15)
    finally:
        if first.poll() is None:
            first.kill()
    assert done["status"] == "done", (done["status"], client.get(
        f"/api/jobs/{job}/events", headers=owner).json())
    assert transitions(client, owner, job).count("running") == 1
    return done


def host_lost_mid_print(
        stack: Stack, client: TestClient, device_id: str, job: tuple[int, dict[str, str]],
        waiting: tuple[int, dict[str, str]], staff: dict[str, str], *,
        held: Callable[[], bool], kill: Callable[[], None], back: Callable[[], None],
) -> None:
    """The host dies under a held print: the job becomes ``interrupted``, the machine
    offline with a reason; once the host is back the machine waits for its bed to be
    cleared, and nothing starts by itself (the waiting job stays ready)."""
    (job_id, owner), (waiting_id, waiting_owner) = job, waiting
    with device_workers(stack, [device_id], poll_s=0.3):
        wait_for(held, timeout=90, what="the print held mid-way")
        kill()
        stopped = wait_status(client, owner, job_id, ENDED, timeout=30)
        assert stopped["status"] == "interrupted", stopped
        dev = wait_for(lambda: (d := device(client, staff, device_id))["state"] in (
            "offline", "needs_bed_clear") and d, timeout=20, what="the printer offline")
        assert dev["state_reason"]
        back()  # the bed still holds the lost print
        wait_for(lambda: device(client, staff, device_id)["state"] == "needs_bed_clear",
                 timeout=40, what="needs_bed_clear after the host is back")
        time.sleep(2)
        assert status(client, owner, job_id) == "interrupted"
        assert status(client, waiting_owner, waiting_id) == "ready"
    assert transitions(client, owner, job_id).count("running") == 1


def refused_key(stack: Stack, client: TestClient, device_id: str,
                staff: dict[str, str]) -> dict[str, Any]:
    """The device with a wrong key or access code, once its worker has tried it."""
    with device_workers(stack, [device_id]):
        dev = wait_for(lambda: (d := device(client, staff, device_id))["state"] in (
            "error", "offline") and d["state_reason"] not in (None, "starting") and d,
            timeout=20, what="the key to be refused")
    assert dev["state"] == "error", dev
    return dev
