"""The operator's frame run then start (issue 10 item 4), on the GRBL driver and the emulator
on a pseudo-terminal: "Start" right after "Trace the frame" works first time, and a start the
machine refuses leaves the job as it was (no ``interrupted``, no notice to the owner)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from fabqueue.drivers.base import DriverError
from fabqueue.queue.device_worker import DeviceWorker
from fabqueue.simulators.grbl_emulator import GrblEmulator
from fabqueue.store.models import Notification
from tests.conftest import Stack, wait_for
from tests.grbl_fixtures import make_grbl_emulator  # noqa: F401
from tests.queue.helpers import device, device_workers, wait_status
from tests.queue.test_dispatch_lasers import FULL, ready_laser_job


def notices(stack: Stack, job: int) -> list[str]:
    with stack.ctx.db.session() as s:
        return list(s.scalars(select(Notification.kind).where(Notification.job_id == job)))


@pytest.mark.stack
def test_start_pressed_during_the_frame_waits_for_it_then_cuts(
        stack: Stack, client, tmp_path: Path,
        make_grbl_emulator: Callable[..., GrblEmulator]) -> None:  # noqa: F811
    # time_scale 0.3: the frame run (about 140 mm at 3000 mm/min) takes about a second, so
    # the start surely arrives while it runs.
    emulator = make_grbl_emulator(time_scale=0.3)
    job, r, s = ready_laser_job(stack, client, tmp_path, emulator.device_path, "las-frm")
    with device_workers(stack, ["las-frm"]):
        wait_for(lambda: device(client, s, "las-frm")["state"] == "awaiting_operator",
                 timeout=20, what="awaiting_operator")
        assert client.post("/api/devices/las-frm/frame", headers=s,
                           json={"job": job}).status_code == 200
        wait_for(lambda: "frame" in (device(client, s, "las-frm")["state_reason_code"] or ""),
                 timeout=20, what="the frame run to be reported")
        ok = client.post("/api/devices/las-frm/start", headers=s,
                         json={"job": job, "checklist": FULL})
        assert ok.status_code == 200, ok.text
        done = wait_status(client, r, job, {"done", "failed", "interrupted"}, timeout=120)
        assert done["status"] == "done", done
    actions = [e["action"] for e in client.get(f"/api/jobs/{job}/events", headers=s).json()]
    assert "start_refused" not in actions and "interrupted" not in actions, actions
    assert not any(a.startswith("ended_") and a != "ended_done" for a in actions), actions
    assert notices(stack, job) == ["job_done"]
    assert any(seg.power > 0 for seg in emulator.segments), "the laser never cut"


class RefusingDriver:
    """Our own stand-in, to inject a refusal the emulator can't produce on demand after the
    connection checks (a controller that turns busy between offer and start)."""

    def start(self, *_args: object, **_kw: object) -> None:
        raise DriverError("The laser is busy with 'other'.", code="busy")


@pytest.mark.stack
def test_a_refused_start_leaves_the_job_ready_with_no_interruption_and_no_notice(
        stack: Stack, client, tmp_path: Path,
        make_grbl_emulator: Callable[..., GrblEmulator]) -> None:  # noqa: F811
    emulator = make_grbl_emulator(time_scale=0.01)
    job, r, s = ready_laser_job(stack, client, tmp_path, emulator.device_path, "las-ref")
    worker = DeviceWorker(stack.ctx, "las-ref")
    worker.driver = RefusingDriver()  # type: ignore[assignment]
    assert worker.lease.acquire()  # one driver per machine: this test is that driver
    assert worker.claim(job)
    worker.start_job(job)
    after = client.get(f"/api/jobs/{job}", headers=r).json()
    assert after["status"] == "ready" and worker.job_id is None
    actions = [e["action"] for e in client.get(f"/api/jobs/{job}/events", headers=s).json()]
    assert "start_refused" in actions and "interrupted" not in actions, actions
    assert notices(stack, job) == []
    # back on its queue: the laser offers it again
    assert [c.job_id for c in worker.candidates(worker.pool)] == [job]
    worker.lease.release()


@pytest.mark.stack
def test_stop_during_the_frame_ends_it_and_forgets_the_held_start(
        stack: Stack, client, tmp_path: Path,
        make_grbl_emulator: Callable[..., GrblEmulator]) -> None:  # noqa: F811
    emulator = make_grbl_emulator(time_scale=1.0)  # real time: a frame of a few seconds
    job, r, s = ready_laser_job(stack, client, tmp_path, emulator.device_path, "las-fst")
    with device_workers(stack, ["las-fst"]):
        wait_for(lambda: device(client, s, "las-fst")["state"] == "awaiting_operator",
                 timeout=20, what="awaiting_operator")
        assert client.post("/api/devices/las-fst/frame", headers=s,
                           json={"job": job}).status_code == 200
        assert client.post("/api/devices/las-fst/start", headers=s,
                           json={"job": job, "checklist": FULL}).status_code == 200
        wait_for(lambda: device(client, s, "las-fst")["state_reason_code"] == "start_after_frame",
                 timeout=20, what="the held start")
        assert client.post("/api/devices/las-fst/stop", headers=s).status_code == 200
        wait_for(lambda: not device(client, s, "las-fst")["state_reason"], timeout=20,
                 what="the frame's reason to be cleared")
        time.sleep(2.0)  # the held start is forgotten: the job never starts
        assert client.get(f"/api/jobs/{job}", headers=r).json()["status"] == "ready"
    assert not any(seg.power > 0 for seg in emulator.segments)
