"""The start gate on real machines: a due or out-of-order machine and an untrained operator
get no command at all (the simulated printer and the REAL GRBL firmware show nothing started);
a trained resident operates their own job; maintenance done or the machine back in order lets
work resume. Trainings and maintenance come from the devices file."""

from __future__ import annotations

import time
from datetime import date, timedelta
from pathlib import Path

import pytest

from fabqueue.store import inventory
from tests.conftest import Stack, needs_prusaslicer, wait_for
from tests.grbl_fixtures import GrblFirmware, make_grbl_firmware, make_grbl_relay  # noqa: F401
from tests.octoprint_fixtures import (
    ensure_idle,
    octoprint_instance_module,
)
from tests.queue.helpers import (
    cube_file,
    device,
    device_workers,
    new_site,
    printer,
    upload,
    wait_status,
)
from tests.queue.test_dispatch_lasers import FULL, Firmware, Relay, fired, ready_laser_job
from tests.queue.test_dispatch_octoprint import octo_printer, ready_print

LT = {"Accept-Language": "lt"}


def file_doc(device_id: str, **task: object) -> dict[str, object]:
    """What a lab writes in its devices file (as parsed from TOML)."""
    return {"training": [{"id": f"tr-{device_id}",
                          "name": {"lt": "Lazerio pagrindai", "ru": "Основы лазера",
                                   "en": "Laser basics"},
                          "devices": [device_id], "valid_days": 365, "renew_on_use": True}],
            "maintenance": [{"id": "lens", "devices": [device_id], **task}]}


def test_untrained_resident_and_out_of_order_laser_fire_nothing_then_trained_resident_cuts(
        stack: Stack, client, tmp_path: Path, make_grbl_firmware: Firmware,  # noqa: F811
        make_grbl_relay: Relay) -> None:  # noqa: F811
    relay = make_grbl_relay(make_grbl_firmware())
    job, r, s = ready_laser_job(stack, client, tmp_path, relay.device_path, "las-tr")
    with stack.ctx.db.session() as db:
        inventory.apply(db, file_doc("las-tr", every_hours=20))
    owner = client.get(f"/api/jobs/{job}", headers=r).json()["owner"]
    start = {"job": job, "checklist": FULL}
    with device_workers(stack, ["las-tr"]):
        wait_for(lambda: device(client, s, "las-tr")["state"] == "awaiting_operator",
                 timeout=30, what="awaiting_operator")
        # no training: 403 naming the training in the reader's language
        res = client.post("/api/devices/las-tr/start", headers={**r, **LT}, json=start)
        assert res.status_code == 403 and res.json()["code"] == "training_required"
        assert "Lazerio pagrindai" in res.json()["detail"]
        # an expired grant (two years ago, 365 days): training_expired
        old = (date.today() - timedelta(days=730)).isoformat()
        g = client.post(f"/api/users/{owner}/trainings", headers=s,
                        json={"training": "tr-las-tr", "on": old})
        assert g.status_code == 201 and g.json()["state"] == "expired", g.text
        res = client.post("/api/devices/las-tr/start", headers=r, json=start)
        assert res.status_code == 403 and res.json()["code"] == "training_expired"
        assert "Laser basics" in res.json()["detail"]
        # out of order: nobody starts it, staff included
        assert client.post("/api/devices/las-tr/out-of-order", headers=s,
                           json={"reason": "lens cracked"}).status_code == 200
        res = client.post("/api/devices/las-tr/start", headers=s, json=start)
        assert res.status_code == 409 and res.json()["code"] == "out_of_order"
        time.sleep(1.0)
        assert not fired(relay), "a refused start reached the laser"
        assert client.get(f"/api/jobs/{job}", headers=r).json()["status"] == "ready"
        wait_for(lambda: device(client, s, "las-tr")["state_reason_code"] == "out_of_order",
                 timeout=10, what="the board to say the laser is out of order")
        assert client.delete("/api/devices/las-tr/out-of-order", headers=s).status_code == 200
        # trained today: the resident confirms the checklist of their own job, and it cuts
        assert client.post(f"/api/users/{owner}/trainings", headers=s,
                           json={"training": "tr-las-tr"}).json()["state"] == "valid"
        wait_for(lambda: device(client, s, "las-tr")["state"] == "awaiting_operator",
                 timeout=30, what="the laser offering the job again")
        # the operator's controls follow the same rule: past the gate (409: nothing runs
        # yet) for the trained owner, 403 for anyone else's resident
        other = stack.token(client, stack.user("resident"))
        assert client.post("/api/devices/las-tr/pause", headers=r).status_code == 409
        assert client.post("/api/devices/las-tr/pause", headers=other).status_code == 403
        ok = client.post("/api/devices/las-tr/start", headers=r, json=start)
        assert ok.status_code == 200, ok.text
        done = wait_status(client, r, job, {"done", "failed", "interrupted"}, timeout=240)
        assert done["status"] == "done", done
    assert fired(relay)
    events = client.get(f"/api/jobs/{job}/events", headers=r).json()
    confirmed = [e for e in events if e["action"] == "operator_confirmed"]
    assert confirmed and confirmed[-1]["who_id"] == owner, confirmed
    # the beam-on time counts towards the lens, and using the laser renewed the training
    m = client.get("/api/devices/las-tr/maintenance", headers=s).json()
    lens = next(t for t in m["tasks"] if t["task"] == "lens")
    assert lens["counters"]["jobs"] == 1 and 0 < lens["counters"]["hours"] < 0.1, lens
    grants = client.get(f"/api/users/{owner}/trainings", headers=r).json()
    assert grants[-1]["last_used_on"] is not None and grants[-1]["state"] == "valid"


@needs_prusaslicer
def test_due_printer_takes_no_job_pinned_job_waits_with_maintenance_due(
        stack: Stack, client, tmp_path: Path) -> None:
    site = new_site(stack, [printer("p-mt", ["PLA"])])
    with stack.ctx.db.session() as db:
        inventory.apply(db, {"maintenance": [{"id": "build_plate", "devices": ["p-mt"],
                                              "every_jobs": 1}]})
    resident, staff = stack.user("resident"), stack.user("staff", site)
    r, s = stack.token(client, resident), stack.token(client, staff)
    first = upload(client, r, cube_file(tmp_path, 12), "PLA", site)
    second = upload(client, r, cube_file(tmp_path, 10, "small.stl"), "PLA", site)
    for j in (first, second):
        wait_status(client, r, j, {"awaiting_approval"})
        assert client.post(f"/api/jobs/{j}/approve", headers=s,
                           json={"device": "p-mt"}).status_code == 200
    with device_workers(stack, ["p-mt"]):
        wait_status(client, r, first, {"done"}, timeout=90)
        wait_for(lambda: device(client, s, "p-mt")["state"] == "needs_bed_clear",
                 what="needs_bed_clear")
        wait_status(client, r, second, {"ready"})
        tasks = client.get("/api/devices/p-mt/maintenance", headers=s).json()["tasks"]
        assert tasks[0]["state"] == "due" and tasks[0]["counters"]["jobs"] == 1
        # the resident may not clear the bed (no training covers this printer: staff only)
        res = client.post("/api/devices/p-mt/bed-cleared", headers=r, json={"job": first})
        assert res.status_code == 403
        res = client.post("/api/devices/p-mt/bed-cleared", headers=s, json={"job": first})
        assert res.status_code == 200, res.text
        wait_for(lambda: client.get(f"/api/jobs/{second}", headers=r).json()[
            "status_reason_code"] == "maintenance_due", timeout=15,
            what="the pinned job to wait for maintenance")
        time.sleep(1.0)
        assert client.get(f"/api/jobs/{second}", headers=r).json()["status"] == "ready"
        dev = device(client, s, "p-mt")
        assert dev["state"] == "idle" and dev["state_reason_code"] == "maintenance_due"
        # done, with a note: the count starts again and the job runs
        res = client.post("/api/devices/p-mt/maintenance/build_plate/done", headers=s,
                          json={"note": "washed the sheet"})
        assert res.status_code == 200
        assert res.json()["tasks"][0]["history"][0]["note"] == "washed the sheet"
        wait_status(client, r, second, {"running", "done"}, timeout=30)
    events = client.get(f"/api/jobs/{first}/events", headers=r).json()
    cleared = [e for e in events if e["action"] == "bed_cleared"]
    assert cleared, events
    # a resident can't record maintenance
    assert client.post("/api/devices/p-mt/maintenance/build_plate/done", headers=r,
                       json={}).status_code == 403


@needs_prusaslicer
@pytest.mark.octoprint
def test_out_of_order_octoprint_printer_receives_nothing_until_back(
        stack: Stack, client, tmp_path: Path, octoprint_instance) -> None:
    ensure_idle(octoprint_instance)
    site = new_site(stack, [octo_printer("op-ooo", octoprint_instance)])
    staff = stack.token(client, stack.user("staff", site))
    assert client.post("/api/devices/op-ooo/out-of-order", headers=staff,
                       json={"reason": "hotend clogged"}).status_code == 200
    job, r, s = ready_print(stack, client, site, tmp_path, size=10)
    request = octoprint_instance_module.request

    def octoprint_job() -> dict:
        status, body = request(f"{octoprint_instance.url}/api/job", octoprint_instance.api_key)
        assert status == 200
        return body

    with device_workers(stack, ["op-ooo"], poll_s=0.3):
        wait_for(lambda: device(client, s, "op-ooo")["state_reason_code"] == "out_of_order",
                 timeout=30, what="the board to say the printer is out of order")
        time.sleep(2.0)  # several polls of the worker: it must send nothing
        assert client.get(f"/api/jobs/{job}", headers=r).json()["status"] == "ready"
        seen = octoprint_job()
        assert seen["state"] == "Operational", seen
        assert str(job) not in str((seen.get("job") or {}).get("file", {}).get("name"))
        assert client.delete("/api/devices/op-ooo/out-of-order", headers=s).status_code == 200
        wait_status(client, r, job, {"running", "done"}, timeout=60)
    ensure_idle(octoprint_instance)
