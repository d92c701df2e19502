"""Laser jobs end to end on the real GRBL driver and the emulator on a pseudo-terminal:
planned program after approval, waiting for the operator, the checklist, the stop button,
an expiring confirmation and a controller not in laser mode."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from fabqueue.simulators.grbl_emulator import GrblEmulator
from tests.conftest import Stack, wait_for
from tests.grbl_fixtures import make_grbl_emulator  # noqa: F401
from tests.queue.helpers import device, device_workers, new_site, upload, wait_status

FULL = {"material": True, "focus": True, "air": True, "lid": True}


def drawing(tmp: Path, name: str = "box.svg", size: float = 40) -> Path:
    """A part with two holes (red: cut) and a fold line (blue: score), in mm."""
    path = tmp / name
    path.write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size + 20}mm" height="{size}mm" '
        f'viewBox="0 0 {size + 20} {size}">'
        f'<rect x="5" y="5" width="{size}" height="{size - 10}" fill="none" stroke="#ff0000"/>'
        '<circle cx="15" cy="15" r="3" fill="none" stroke="#ff0000"/>'
        '<circle cx="30" cy="15" r="3" fill="none" stroke="#ff0000"/>'
        f'<line x1="5" y1="{size / 2}" x2="{size + 5}" y2="{size / 2}" stroke="#0000ff"/>'
        "</svg>")
    return path


def laser(device_id: str, port: str) -> dict[str, object]:
    return {"id": device_id, "site": "", "kind": "laser", "driver": "grbl", "port": port,
            "bed_mm": (600, 400), "materials": ["plywood-3mm"], "max_power_s": 1000}


def ready_laser_job(stack: Stack, client, tmp: Path, emulator: GrblEmulator,  # type: ignore[no-untyped-def]
                    device_id: str) -> tuple[int, dict[str, str], dict[str, str]]:
    site = new_site(stack, [laser(device_id, emulator.device_path)])
    resident, staff = stack.user("resident"), stack.user("staff", site)
    r, s = stack.token(client, resident), stack.token(client, staff)
    job = upload(client, r, drawing(tmp), "plywood-3mm", site)
    analysed = wait_status(client, r, job, {"awaiting_approval", "invalid"})
    assert analysed["status"] == "awaiting_approval", analysed["analysis"]
    assert analysed["kind"] == "laser"
    assert client.post(f"/api/jobs/{job}/approve", headers=s).status_code == 200
    ready = wait_status(client, r, job, {"ready", "failed"})
    assert ready["status"] == "ready", ready
    assert ready["slicing"]["lines"] > 10 and ready["slicing"]["cut_length_mm"] > 0
    return job, r, s


def test_laser_waits_for_operator_checklist_then_cuts(
        stack: Stack, client, tmp_path: Path,
        make_grbl_emulator: Callable[..., GrblEmulator]) -> None:  # noqa: F811
    emulator = make_grbl_emulator(time_scale=0.01)
    job, r, s = ready_laser_job(stack, client, tmp_path, emulator, "las-ok")
    with device_workers(stack, ["las-ok"]):
        dev = wait_for(lambda: (d := device(client, s, "las-ok"))["state"] ==
                       "awaiting_operator" and d, timeout=15, what="awaiting_operator")
        assert dev["job"] == job
        time.sleep(1.0)  # it never starts on its own
        assert client.get(f"/api/jobs/{job}", headers=r).json()["status"] == "ready"
        missing = client.post("/api/devices/las-ok/start", headers=s,
                              json={"job": job, "checklist": {**FULL, "lid": False}})
        assert missing.status_code == 409 and "lid" in missing.json()["detail"]
        # a resident can't start a laser
        assert client.post("/api/devices/las-ok/start", headers=r,
                           json={"job": job, "checklist": FULL}).status_code == 403
        ok = client.post("/api/devices/las-ok/start", headers=s,
                         json={"job": job, "checklist": FULL})
        assert ok.status_code == 200, ok.text
        done = wait_status(client, r, job, {"done", "failed", "interrupted"}, timeout=30)
        assert done["status"] == "done", done
    cuts = [seg for seg in emulator.segments if seg.power > 0]
    assert cuts, "the laser never fired"
    assert all(seg.power == 0 for seg in emulator.segments if seg.rapid)
    assert emulator.lines_received[-1].strip().startswith("M5") or any(
        line.strip() == "M5" for line in emulator.lines_received[-3:])
    assert wait_for(lambda: device(client, s, "las-ok")["state"] in ("idle", "awaiting_operator"),
                    what="laser idle again")


def test_stop_button_halts_the_laser_within_half_a_second(
        stack: Stack, client, tmp_path: Path,
        make_grbl_emulator: Callable[..., GrblEmulator]) -> None:  # noqa: F811
    emulator = make_grbl_emulator(time_scale=0.5)  # a job of a few seconds
    job, r, s = ready_laser_job(stack, client, tmp_path, emulator, "las-stop")
    with device_workers(stack, ["las-stop"]):
        wait_for(lambda: device(client, s, "las-stop")["state"] == "awaiting_operator",
                 timeout=15, what="awaiting_operator")
        assert client.post("/api/devices/las-stop/start", headers=s,
                           json={"job": job, "checklist": FULL}).status_code == 200
        wait_status(client, r, job, {"running"}, timeout=10)
        wait_for(lambda: any(seg.power > 0 for seg in emulator.segments), timeout=10,
                 interval=0.02, what="the laser to fire")
        t0 = time.monotonic()
        assert client.post("/api/devices/las-stop/stop", headers=s).status_code == 200
        wait_for(lambda: 0x18 in emulator.realtime_bytes(), timeout=0.5, interval=0.005,
                 what="the soft reset reaching the controller")
        assert time.monotonic() - t0 < 0.5
        stopped = wait_status(client, r, job, {"interrupted"}, timeout=5)
        assert stopped["status"] == "interrupted"
    assert emulator.state in ("Alarm", "Idle")
    assert not any(seg.power > 0 for seg in emulator.segments if seg.rapid)


def test_confirmation_expires_when_the_laser_cannot_start_at_once(
        stack: Stack, client, tmp_path: Path,
        make_grbl_emulator: Callable[..., GrblEmulator]) -> None:  # noqa: F811
    emulator = make_grbl_emulator(time_scale=0.01)
    job, r, s = ready_laser_job(stack, client, tmp_path, emulator, "las-exp")
    with stack.ctx.db.session() as db:
        from fabqueue.store.models import Device

        db.get(Device, "las-exp").state = "awaiting_operator"
    ttl = stack.ctx.settings.operator_confirmation_ttl_s
    stack.ctx.settings.operator_confirmation_ttl_s = 1
    try:
        # No worker drives the laser yet: the confirmation can't be acted on at once.
        assert client.post("/api/devices/las-exp/start", headers=s,
                           json={"job": job, "checklist": FULL}).status_code == 200
        time.sleep(1.5)
        with device_workers(stack, ["las-exp"]):
            dev = wait_for(lambda: (d := device(client, s, "las-exp"))["state_reason"]
                           and "expired" in d["state_reason"] and d, timeout=15,
                           what="the expiry to be reported")
            assert dev["confirmation"] is None
            time.sleep(0.5)
            assert client.get(f"/api/jobs/{job}", headers=r).json()["status"] == "ready"
    finally:
        stack.ctx.settings.operator_confirmation_ttl_s = ttl
    assert not any(seg.power > 0 for seg in emulator.segments)


def test_laser_not_in_laser_mode_is_refused_before_starting(
        stack: Stack, client, tmp_path: Path,
        make_grbl_emulator: Callable[..., GrblEmulator]) -> None:  # noqa: F811
    emulator = make_grbl_emulator(time_scale=0.01, laser_mode=False)
    site = new_site(stack, [laser("las-nomode", emulator.device_path)])
    staff = stack.user("staff", site)
    s = stack.token(client, staff)
    with device_workers(stack, ["las-nomode"]):
        dev = wait_for(lambda: (d := device(client, s, "las-nomode"))["state"] == "error" and d,
                       timeout=15, what="the laser-mode refusal")
        assert "laser mode" in (dev["state_reason"] or "").lower()
    assert not any(seg.power > 0 for seg in emulator.segments)


def test_laser_whose_max_power_differs_is_refused_with_the_setting_named(
        stack: Stack, client, make_grbl_emulator: Callable[..., GrblEmulator]) -> None:  # noqa: F811
    emulator = make_grbl_emulator(time_scale=0.01, max_s=255)
    site = new_site(stack, [laser("las-s30", emulator.device_path)])  # expects $30=1000
    s = stack.token(client, stack.user("staff", site))
    with device_workers(stack, ["las-s30"]):
        dev = wait_for(lambda: (d := device(client, s, "las-s30"))["state"] == "error" and d,
                       timeout=15, what="the $30 refusal")
    assert "$30" in dev["state_reason"]
