"""More laser paths end to end: the sample drawing cut with a site's own colours, the frame
run with the beam off (on the REAL GRBL firmware), a material with no laser settings refused
at approval; and a print paused and resumed through the API."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from fabqueue.simulators.grbl_emulator import GrblEmulator
from fabqueue.store import inventory
from tests.conftest import Stack, sample, wait_for
from tests.grbl_fixtures import (  # noqa: F401
    GrblFirmware,
    make_grbl_emulator,
    make_grbl_firmware,
    make_grbl_relay,
)
from tests.grbl_relay import GrblRelay
from tests.queue.helpers import (
    cube_file,
    device,
    device_workers,
    new_site,
    printer,
    upload,
    wait_status,
)
from tests.queue.test_dispatch_lasers import FULL, drawing, laser


def test_sample_drawing_is_cut_end_to_end_with_the_sites_colours(
        stack: Stack, client, make_grbl_emulator: Callable[..., GrblEmulator]) -> None:  # noqa: F811
    """Emulator (at 1/2000 of real time): the tray has over a metre of cuts at 300 mm/min,
    two passes, about 8 minutes on the real firmware, which runs at real time or slower.
    The firmware cuts a whole job end to end in tests/queue/test_dispatch_lasers.py."""
    tray = sample("tray-easy1.svg")
    emulator = make_grbl_emulator(time_scale=0.0005)
    site = new_site(stack, [laser("las-tray", emulator.device_path)])
    with stack.ctx.db.session() as db:  # this site cuts black strokes
        inventory.apply(db, {"site": [{"id": site, "name": site,
                                       "colours": {"#000000": "cut", "#0000ff": "score"}}]})
    r = stack.token(client, stack.user("resident"))
    s = stack.token(client, stack.user("staff", site))
    job = upload(client, r, tray, "plywood-3mm", site)
    analysed = wait_status(client, r, job, {"awaiting_approval", "invalid"})
    assert analysed["status"] == "awaiting_approval", analysed["analysis"]["errors"]
    assert analysed["analysis"]["cut_length_mm"] > 1000
    assert client.post(f"/api/jobs/{job}/approve", headers=s).status_code == 200
    wait_status(client, r, job, {"ready"}, timeout=60)
    with device_workers(stack, ["las-tray"]):
        wait_for(lambda: device(client, s, "las-tray")["state"] == "awaiting_operator",
                 timeout=15, what="awaiting_operator")
        assert client.post("/api/devices/las-tray/start", headers=s,
                           json={"job": job, "checklist": FULL}).status_code == 200
        seen = []

        def ended() -> bool:
            p = device(client, s, "las-tray")["progress"]
            if p is not None:
                seen.append(p)
            return client.get(f"/api/jobs/{job}", headers=r).json()["status"] in (
                "done", "failed", "interrupted")

        wait_for(ended, timeout=120, interval=0.2, what="the tray to be cut")
    assert client.get(f"/api/jobs/{job}", headers=r).json()["status"] == "done"
    assert any(0 < p < 100 for p in seen)
    lit = [seg for seg in emulator.segments if seg.power > 0]
    assert sum(((seg.end[0] - seg.start[0]) ** 2 + (seg.end[1] - seg.start[1]) ** 2) ** 0.5
               for seg in lit) > 1000


def test_frame_traces_the_outline_with_the_beam_off(
        stack: Stack, client, tmp_path: Path,
        make_grbl_firmware: Callable[..., GrblFirmware],  # noqa: F811
        make_grbl_relay: Callable[..., GrblRelay]) -> None:  # noqa: F811
    relay = make_grbl_relay(make_grbl_firmware())
    site = new_site(stack, [laser("las-frame", relay.device_path)])
    r = stack.token(client, stack.user("resident"))
    s = stack.token(client, stack.user("staff", site))
    job = upload(client, r, drawing(tmp_path), "plywood-3mm", site)
    wait_status(client, r, job, {"awaiting_approval"})
    assert client.post(f"/api/jobs/{job}/approve", headers=s).status_code == 200
    bbox = wait_status(client, r, job, {"ready"}, timeout=60)["slicing"]["bbox"]
    with device_workers(stack, ["las-frame"]):
        wait_for(lambda: device(client, s, "las-frame")["state"] == "awaiting_operator",
                 timeout=30, what="awaiting_operator")
        assert client.post("/api/devices/las-frame/frame", headers=s,
                           json={"job": job}).status_code == 200
        moves = wait_for(lambda: (m := [x for x in relay.lines if x.startswith("G1")])
                         and len(m) >= 4 and m, timeout=30, what="the frame run")
        # the firmware reports where the head went: every corner of the bbox is reached
        wait_for(lambda: any(x.startswith("<Idle") for x in relay.replies[-3:])
                 and "G4 P0" in relay.lines, timeout=120, what="the frame run to end")
    assert not [x for x in relay.lines if "M3" in x or "M4" in x]  # the beam never on
    coords = [dict(re.findall(r"([XY])(-?[\d.]+)", m)) for m in moves]
    xs = [float(c["X"]) for c in coords if "X" in c]
    ys = [float(c["Y"]) for c in coords if "Y" in c]
    assert min(xs) <= bbox[0] + 0.01 and max(xs) >= bbox[2] - 0.01
    assert min(ys) <= bbox[1] + 0.01 and max(ys) >= bbox[3] - 0.01
    assert not [x for x in relay.replies if x.startswith(("error", "ALARM"))]
    assert client.get(f"/api/jobs/{job}", headers=r).json()["status"] == "ready"


def test_sheet_without_laser_settings_is_refused_at_approval(stack: Stack, client,
                                                             tmp_path: Path) -> None:
    site = new_site(stack, [laser("las-glass", "/dev/null")])
    with stack.ctx.db.session() as db:
        inventory.apply(db, {"material": [{"id": "glass-3mm", "kind": "sheet",
                                           "thickness_mm": 3, "price_per_sheet": 9}]})
        from fabqueue.store.models import Device

        db.get(Device, "las-glass").materials = ["glass-3mm"]
    r = stack.token(client, stack.user("resident"))
    s = stack.token(client, stack.user("staff", site))
    job = upload(client, r, drawing(tmp_path), "glass-3mm", site)
    result = wait_status(client, r, job, {"awaiting_approval", "invalid"})
    if result["status"] == "awaiting_approval":
        refused = client.post(f"/api/jobs/{job}/approve", headers=s)
        assert refused.status_code == 409
        assert "glass-3mm" in refused.json()["detail"]
    else:  # refused already by the analysis, naming the material
        assert any("glass-3mm" in e for e in result["analysis"]["errors"])


def test_print_paused_and_resumed_from_the_api(stack: Stack, client, tmp_path: Path) -> None:
    site = new_site(stack, [printer("pr-1", ["PLA"], simulated_speed=40)])
    r = stack.token(client, stack.user("resident"))
    s = stack.token(client, stack.user("staff", site))
    job = upload(client, r, cube_file(tmp_path, 10), "PLA", site)
    wait_status(client, r, job, {"awaiting_approval"})
    assert client.post(f"/api/jobs/{job}/approve", headers=s).status_code == 200
    from fabqueue.simulators.printer import forget_printer

    forget_printer("pr-1")
    with device_workers(stack, ["pr-1"]):
        wait_for(lambda: (device(client, s, "pr-1")["progress"] or 0) > 0, timeout=40,
                 what="printing")
        assert client.post("/api/devices/pr-1/pause", headers=s).status_code == 200
        wait_for(lambda: device(client, s, "pr-1")["state"] == "paused", timeout=5,
                 what="paused")
        import time

        time.sleep(0.6)  # the last progress from before the pause has landed
        held = device(client, s, "pr-1")["progress"]
        time.sleep(1.0)
        assert device(client, s, "pr-1")["progress"] == held
        assert client.post("/api/devices/pr-1/resume", headers=s).status_code == 200
        wait_status(client, r, job, {"done"}, timeout=60)
    assert client.post("/api/devices/pr-1/pause", headers=s).status_code == 409  # nothing runs
