"""Issue 19, accounts and sites: another site's staff read a machine's public board fields
only; a frame traces only a job of this laser; "bed is clear" clears only the print the
board showed (a stale second click must not clear the next print's bed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from fabqueue.store.inventory import DeviceIn, upsert_device
from fabqueue.store.models import Device, Job
from tests.conftest import Stack
from tests.helpers import english_client, insert_job, login

pytestmark = pytest.mark.stack


@pytest.fixture
def client(stack: Stack) -> TestClient:
    return english_client(stack)


def set_device(stack: Stack, device_id: str, **fields: object) -> None:
    with stack.ctx.db.session() as s:
        d = s.get(Device, device_id)
        for k, v in fields.items():
            setattr(d, k, v)


@pytest.fixture
def printer(stack: Stack) -> Iterator[str]:
    """A kc printer of this test's own, with settings and a confirmation to hide; no worker
    drives it (disabled), the test sets its state."""
    dev = "wh-sites-p"
    with stack.ctx.db.session() as s:
        upsert_device(s, DeviceIn(id=dev, site="kc", kind="printer", driver="simulated",
                                  build_volume_mm=(200, 200, 200), materials=["PLA"],
                                  enabled=False))
    set_device(stack, dev, settings={"secret_offset": 1.5},
               confirmation={"job": 1, "by": 1, "checklist": {"lid": True}})
    yield dev
    with stack.ctx.db.session() as s:
        s.delete(s.get(Device, dev))


def test_other_sites_staff_get_the_public_fields_only(
        stack: Stack, client: TestClient, printer: str) -> None:
    other = stack.token(client, stack.user("staff", "school-a", name="wh-staff-school-a"))
    own = login(stack, client, "staff")  # kc
    listed = {d["id"]: d for d in client.get("/api/devices", headers=other).json()}
    assert "settings" not in listed[printer] and "confirmation" not in listed[printer]
    one = client.get(f"/api/devices/{printer}", headers=other).json()
    assert "settings" not in one and "confirmation" not in one
    assert one["state"] and one["name"]  # the board's fields stay
    # the machine's own site still reads them
    mine = client.get(f"/api/devices/{printer}", headers=own).json()
    assert mine["settings"] == {"secret_offset": 1.5}
    assert mine["confirmation"]["checklist"] == {"lid": True}
    listed = {d["id"]: d for d in client.get("/api/devices", headers=own).json()}
    assert listed[printer]["settings"] == {"secret_offset": 1.5}


def test_bed_cleared_clears_only_the_print_it_was_shown_for(
        stack: Stack, client: TestClient, printer: str) -> None:
    staff = login(stack, client, "staff")
    first = insert_job(stack, "resident", "kc", "done")
    second = insert_job(stack, "resident", "kc", "done")
    set_device(stack, printer, state="needs_bed_clear", current_job_id=first)
    url = f"/api/devices/{printer}/bed-cleared"
    assert client.post(url, json={"job": first}, headers=staff).status_code == 200
    # the next print started and finished; a stale second click from the old page
    set_device(stack, printer, state="needs_bed_clear", current_job_id=second)
    stale = client.post(url, json={"job": first}, headers=staff)
    assert stale.status_code == 409, stale.text
    assert f"job {second}" in stale.json()["detail"]
    with stack.ctx.db.session() as s:
        d = s.get(Device, printer)
        assert (d.state, d.current_job_id) == ("needs_bed_clear", second)
    # a click that names no print is refused, not taken for the current one
    assert client.post(url, headers=staff).status_code == 422
    assert client.post(url, json={"job": second}, headers=staff).status_code == 200
    with stack.ctx.db.session() as s:
        assert s.get(Device, printer).state == "idle"


@pytest.fixture
def laser(stack: Stack) -> Iterator[str]:
    dev = "wh-sites-l"
    with stack.ctx.db.session() as s:
        upsert_device(s, DeviceIn(id=dev, site="kc", kind="laser", driver="simulated",
                                  bed_mm=(600, 400), materials=["plywood-3mm"], enabled=False))
    set_device(stack, dev, state="idle", materials=["plywood-3mm"])
    yield dev
    with stack.ctx.db.session() as s:
        s.delete(s.get(Device, dev))


def laser_job(stack: Stack, *, site: str = "kc", pinned: str | None = None) -> int:
    job_id = insert_job(stack, "resident", site, "ready")
    with stack.ctx.db.session() as s:
        job = s.get(Job, job_id)
        job.kind, job.material_id, job.pinned_device_id = "laser", "plywood-3mm", pinned
    return job_id


def test_frame_refuses_a_job_that_is_not_this_lasers(
        stack: Stack, client: TestClient, laser: str) -> None:
    staff = login(stack, client, "staff")
    url = f"/api/devices/{laser}/frame"
    a_print = insert_job(stack, "resident", "kc", "ready")
    assert client.post(url, json={"job": a_print}, headers=staff).status_code == 404
    assert client.post(url, json={"job": 99_999_999}, headers=staff).status_code == 404
    elsewhere = laser_job(stack, pinned="laser-other")
    assert client.post(url, json={"job": elsewhere}, headers=staff).status_code == 409
    other_site = laser_job(stack, site="school-a")
    assert client.post(url, json={"job": other_site}, headers=staff).status_code == 409
    mine = laser_job(stack)
    r = client.post(url, json={"job": mine}, headers=staff)
    assert r.status_code == 200, r.text
