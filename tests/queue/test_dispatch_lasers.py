"""Laser jobs end to end on the real GRBL driver and the REAL GRBL 1.1h firmware (grbl-sim on
a pseudo-terminal, behind a spy relay that records what the driver sent): planned program
after approval, waiting for the operator, the checklist, the stop button, an expiring
confirmation, a controller not in laser mode, and a link that comes back."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Stack, wait_for
from tests.grbl_fixtures import GrblFirmware, make_grbl_firmware, make_grbl_relay  # noqa: F401
from tests.grbl_relay import GrblRelay
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


def tiny_drawing(tmp: Path) -> Path:
    """A 6 x 4 mm part (red: cut) and a fold line (blue: score): seconds on the firmware,
    which runs at about real time (cut at 300 mm/min, two passes)."""
    path = tmp / "tiny.svg"
    path.write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="12mm" height="10mm" viewBox="0 0 12 10">'
        '<rect x="2" y="2" width="6" height="4" fill="none" stroke="#ff0000"/>'
        '<line x1="2" y1="8" x2="8" y2="8" stroke="#0000ff"/></svg>')
    return path


def ready_laser_job(stack: Stack, client, tmp: Path, port: str,  # type: ignore[no-untyped-def]
                    device_id: str) -> tuple[int, dict[str, str], dict[str, str]]:
    site = new_site(stack, [laser(device_id, port)])
    resident, staff = stack.user("resident"), stack.user("staff", site)
    r, s = stack.token(client, resident), stack.token(client, staff)
    job = upload(client, r, tiny_drawing(tmp), "plywood-3mm", site)
    analysed = wait_status(client, r, job, {"awaiting_approval", "invalid"})
    assert analysed["status"] == "awaiting_approval", analysed["analysis"]
    assert analysed["kind"] == "laser"
    assert client.post(f"/api/jobs/{job}/approve", headers=s).status_code == 200
    ready = wait_status(client, r, job, {"ready", "failed"})
    assert ready["status"] == "ready", ready
    assert ready["slicing"]["lines"] > 5 and ready["slicing"]["cut_length_mm"] > 0
    return job, r, s


Firmware = Callable[..., GrblFirmware]
Relay = Callable[..., GrblRelay]


def fired(relay: GrblRelay) -> bool:
    """A line switched the beam on with some power (M3/M4 with S > 0, or S > 0 after)."""
    return any(("M4" in x or "M3" in x) for x in relay.lines) and any(
        re.search(r"S(?!0\b)\d", x) for x in relay.lines)


def test_laser_waits_for_operator_checklist_then_cuts(
        stack: Stack, client, tmp_path: Path, make_grbl_firmware: Firmware,  # noqa: F811
        make_grbl_relay: Relay) -> None:  # noqa: F811
    relay = make_grbl_relay(make_grbl_firmware())
    job, r, s = ready_laser_job(stack, client, tmp_path, relay.device_path, "las-ok")
    with device_workers(stack, ["las-ok"]):
        dev = wait_for(lambda: (d := device(client, s, "las-ok"))["state"] ==
                       "awaiting_operator" and d, timeout=30, what="awaiting_operator")
        assert dev["job"] == job
        time.sleep(1.0)  # it never starts on its own
        assert client.get(f"/api/jobs/{job}", headers=r).json()["status"] == "ready"
        assert not fired(relay)
        missing = client.post("/api/devices/las-ok/start", headers=s,
                              json={"job": job, "checklist": {**FULL, "lid": False}})
        assert missing.status_code == 409 and "lid" in missing.json()["detail"]
        # a resident can't start a laser
        assert client.post("/api/devices/las-ok/start", headers=r,
                           json={"job": job, "checklist": FULL}).status_code == 403
        ok = client.post("/api/devices/las-ok/start", headers=s,
                         json={"job": job, "checklist": FULL})
        assert ok.status_code == 200, ok.text
        done = wait_status(client, r, job, {"done", "failed", "interrupted"}, timeout=240)
        assert done["status"] == "done", done
    assert fired(relay), "the laser never fired"
    program = [x for x in relay.lines if x and x != "G4 P0"]
    assert program[-1] == "M5" or "M5" in program[-3:]  # the beam is off at the end
    assert not [x for x in relay.replies if x.startswith(("error", "ALARM"))]
    assert wait_for(lambda: device(client, s, "las-ok")["state"] in ("idle", "awaiting_operator"),
                    what="laser idle again")


def test_stop_button_halts_the_laser_within_half_a_second(
        stack: Stack, client, tmp_path: Path, make_grbl_firmware: Firmware,  # noqa: F811
        make_grbl_relay: Relay) -> None:  # noqa: F811
    relay = make_grbl_relay(make_grbl_firmware())
    job, r, s = ready_laser_job(stack, client, tmp_path, relay.device_path, "las-stop")
    with device_workers(stack, ["las-stop"]):
        wait_for(lambda: device(client, s, "las-stop")["state"] == "awaiting_operator",
                 timeout=30, what="awaiting_operator")
        assert client.post("/api/devices/las-stop/start", headers=s,
                           json={"job": job, "checklist": FULL}).status_code == 200
        wait_status(client, r, job, {"running"}, timeout=30)
        wait_for(lambda: fired(relay) and any(x.startswith("<Run") for x in relay.replies[-5:]),
                 timeout=30, interval=0.02, what="the laser to fire")
        t0 = time.monotonic()
        assert client.post("/api/devices/las-stop/stop", headers=s).status_code == 200
        wait_for(lambda: any(b == 0x18 and t >= t0 for t, b in relay.realtime), timeout=0.5,
                 interval=0.005, what="the soft reset reaching the controller")
        stopped = wait_status(client, r, job, {"interrupted"}, timeout=30)
        assert stopped["status"] == "interrupted"
        assert "ALARM:3" in relay.replies or "Grbl 1.1h ['$' for help]" in relay.replies[-10:]


def test_confirmation_expires_when_the_laser_cannot_start_at_once(
        stack: Stack, client, tmp_path: Path, make_grbl_firmware: Firmware,  # noqa: F811
        make_grbl_relay: Relay) -> None:  # noqa: F811
    relay = make_grbl_relay(make_grbl_firmware())
    job, r, s = ready_laser_job(stack, client, tmp_path, relay.device_path, "las-exp")
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
                           and "expired" in d["state_reason"] and d, timeout=30,
                           what="the expiry to be reported")
            assert dev["confirmation"] is None
            time.sleep(0.5)
            assert client.get(f"/api/jobs/{job}", headers=r).json()["status"] == "ready"
    finally:
        stack.ctx.settings.operator_confirmation_ttl_s = ttl
    assert not fired(relay)


def test_laser_not_in_laser_mode_is_refused_before_starting(
        stack: Stack, client, make_grbl_firmware: Firmware,  # noqa: F811
        make_grbl_relay: Relay) -> None:  # noqa: F811
    relay = make_grbl_relay(make_grbl_firmware(laser_mode=False))
    site = new_site(stack, [laser("las-nomode", relay.device_path)])
    staff = stack.user("staff", site)
    s = stack.token(client, staff)
    with device_workers(stack, ["las-nomode"]):
        dev = wait_for(lambda: (d := device(client, s, "las-nomode"))["state"] == "error" and d,
                       timeout=30, what="the laser-mode refusal")
        assert "laser mode" in (dev["state_reason"] or "").lower()
    assert not [x for x in relay.lines if x.startswith(("G", "M"))]


def test_laser_whose_max_power_differs_is_refused_with_the_setting_named(
        stack: Stack, client, make_grbl_firmware: Firmware) -> None:  # noqa: F811
    firmware = make_grbl_firmware(s30=255)
    site = new_site(stack, [laser("las-s30", firmware.device_path)])  # expects $30=1000
    s = stack.token(client, stack.user("staff", site))
    with device_workers(stack, ["las-s30"]):
        dev = wait_for(lambda: (d := device(client, s, "las-s30"))["state"] == "error" and d,
                       timeout=30, what="the $30 refusal")
    assert "$30" in dev["state_reason"]


def test_link_comes_back_after_a_power_cut_and_the_job_waits_for_staff(
        stack: Stack, client, tmp_path: Path, make_grbl_firmware: Firmware) -> None:  # noqa: F811
    """The controller loses power mid-job (socat and the firmware killed: the port
    vanishes), then comes back on the same link path: the device worker reconnects by itself,
    the job stays ``interrupted`` (never restarted by itself); later the port vanishes while
    idle and returns, and the worker reconnects again, without a restart of FabQueue."""
    firmware = make_grbl_firmware()
    job, r, s = ready_laser_job(stack, client, tmp_path, firmware.device_path, "las-back")
    with device_workers(stack, ["las-back"]) as workers:
        wait_for(lambda: device(client, s, "las-back")["state"] == "awaiting_operator",
                 timeout=30, what="awaiting_operator")
        assert client.post("/api/devices/las-back/start", headers=s,
                           json={"job": job, "checklist": FULL}).status_code == 200
        wait_status(client, r, job, {"running"}, timeout=30)
        firmware.stop()  # power cut
        cut = wait_status(client, r, job, {"interrupted", "failed", "done"}, timeout=30)
        assert cut["status"] == "interrupted", cut
        wait_for(lambda: device(client, s, "las-back")["state"] == "offline", timeout=30,
                 what="the laser shown offline")
        firmware.start(configure=False)  # power back: same path, settings in its EEPROM
        wait_for(lambda: device(client, s, "las-back")["state"] in ("idle", "awaiting_operator"),
                 timeout=60, what="the worker to reconnect")
        assert workers["las-back"].driver is not None
        time.sleep(1.0)
        assert client.get(f"/api/jobs/{job}", headers=r).json()["status"] == "interrupted"
        # unplugged while idle, plugged in again: reconnects too
        firmware.stop()
        wait_for(lambda: device(client, s, "las-back")["state"] == "offline", timeout=30,
                 what="offline while idle")
        firmware.start(configure=False)
        wait_for(lambda: device(client, s, "las-back")["state"] in ("idle", "awaiting_operator"),
                 timeout=60, what="the worker to reconnect while idle")
    assert client.get(f"/api/jobs/{job}", headers=r).json()["status"] == "interrupted"


def test_factory_status_mask_is_changed_and_the_sites_staff_are_told(
        stack: Stack, client, make_grbl_firmware: Firmware) -> None:  # noqa: F811
    """GRBL on its factory ``$10=1`` sends no ``Bf:``; the driver sets bit 1 at connect
    (issue 19) and the device worker tells the site's staff, in their language, what it
    changed on the lab's controller. Another site's staff are not told."""
    from fabqueue.core.reasons import decode

    firmware = make_grbl_firmware(s10=1)
    site = new_site(stack, [laser("las-s10", firmware.device_path)])
    staff = stack.user("staff", site)
    other = stack.user("staff", new_site(stack, []))
    s = stack.token(client, staff)
    with device_workers(stack, ["las-s10"]):
        wait_for(lambda: device(client, s, "las-s10")["state"] == "idle", timeout=30,
                 what="the laser connected")
    assert "$10=3" in firmware.query("$$")
    from sqlalchemy import select

    from fabqueue.store.models import Notification, User

    with stack.ctx.db.session() as db:
        rows = db.execute(select(User.name, Notification.params).join(
            User, User.id == Notification.user_id).where(
            Notification.kind == "machine_note")).all()
    rows = [(name, params) for name, params in rows if params["device"] == "las-s10"]
    told = {name for name, _ in rows}  # (other tests' lasers in this stack tell theirs)
    assert staff in told and other not in told, rows
    found = decode(rows[0][1]["reason"])
    assert found and found.code == "grbl_status_mask_set"
