"""Sites, machines and materials through the admin API: re-putting updates, secrets stay in
the environment (a key in the request is refused by name and never stored)."""

from __future__ import annotations

import subprocess

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Stack
from tests.helpers import english_client, insert_job


@pytest.fixture
def client(stack: Stack) -> TestClient:
    return english_client(stack)


@pytest.fixture(scope="module")
def admin(stack: Stack) -> dict[str, str]:
    with stack.client() as c:
        return stack.token(c, stack.user("admin"))


PRINTER = {"id": "inv-mk4", "site": "kc", "kind": "printer", "driver": "octoprint",
           "url": "http://127.0.0.1:5999", "api_key_env": "FABQUEUE_DEVICE_INV_MK4_KEY",
           "build_volume_mm": [250, 210, 220], "materials": ["PLA"], "profile": "prusa_mk4",
           "enabled": False}


def test_put_device_then_update_it(client: TestClient, admin: dict[str, str]) -> None:
    r = client.put("/api/devices/inv-mk4", headers=admin, json=PRINTER)
    assert r.status_code == 200, r.text
    assert r.json()["build_volume_mm"] == [250, 210, 220]
    assert r.json()["connection"] == {"url": "http://127.0.0.1:5999",
                                      "api_key_env": "FABQUEUE_DEVICE_INV_MK4_KEY"}
    r = client.put("/api/devices/inv-mk4", headers=admin,
                   json={**PRINTER, "materials": ["PLA", "PETG"], "name": "MK4 by the door"})
    assert r.status_code == 200
    shown = client.get("/api/devices/inv-mk4", headers=admin).json()
    assert shown["materials"] == ["PLA", "PETG"] and shown["name"] == "MK4 by the door"


@pytest.mark.parametrize(("change", "named"), [
    ({"api_key": "s3cr3t-inventory-key"}, "api_key"),
    ({"build_volume_mm": None}, "build_volume_mm"),
    ({"site": "atlantis"}, "atlantis"),
    ({"driver": "grbl"}, "GRBL"),
    ({"api_key_env": "not a variable!"}, "api_key_env"),
    ({"driver": "moonraker", "url": None}, "Moonraker"),
    ({"driver": "moonraker", "kind": "laser", "bed_mm": [600, 400]}, "moonraker"),
    ({"driver": "no-such-host"}, "driver"),
    ({"driver": "bambu"}, "Bambu"),  # host, serial and access_code_env are named
    ({"driver": "prusalink", "url": None}, "PrusaLink"),
    ({"driver": "prusalink", "password_env": "no spaces!"}, "password_env"),
], ids=["secret", "no-size", "unknown-site", "wrong-driver", "bad-env-name",
        "moonraker-no-url", "moonraker-laser", "not-yet-a-driver", "bambu-no-serial",
        "prusalink-no-url", "prusalink-bad-password-env"])
def test_bad_device_is_refused_by_name(stack: Stack, client: TestClient,
                                       admin: dict[str, str], change: dict,
                                       named: str) -> None:
    r = client.put("/api/devices/inv-bad", headers=admin, json={**PRINTER, "id": "inv-bad",
                                                                **change})
    assert r.status_code == 422
    assert named in r.json()["detail"], r.json()
    assert client.get("/api/devices/inv-bad", headers=admin).status_code == 404
    if stack.ctx.settings.database_url is None:
        # grep in another process: opening the live SQLite file in this one and closing it
        # would drop SQLite's POSIX locks here and leave this process reading stale pages
        found = subprocess.run(["grep", "-rl", "s3cr3t-inventory-key", str(stack.data_dir)],
                               capture_output=True, text=True)
        assert found.stdout == "", found.stdout


def test_sheet_material_and_site(client: TestClient, admin: dict[str, str]) -> None:
    r = client.put("/api/materials/inv-acrylic-5mm", headers=admin, json={
        "id": "inv-acrylic-5mm", "kind": "sheet", "name": "Acrylic 5 mm", "thickness_mm": 5,
        "price_per_sheet": 18.5, "sheet_mm": [600, 400]})
    assert r.status_code == 200, r.text
    listed = {m["id"]: m for m in client.get("/api/materials", headers=admin).json()}
    assert listed["inv-acrylic-5mm"]["sheet_mm"] == [600, 400]
    assert listed["inv-acrylic-5mm"]["price_per_sheet"] == 18.5
    r = client.put("/api/materials/inv-pla", headers=admin,
                   json={"id": "inv-pla", "kind": "filament"})
    assert r.status_code == 422 and "density_g_cm3" in r.json()["detail"]
    r = client.put("/api/sites/inv-site", headers=admin, json={
        "id": "inv-site", "name": "Biblioteka", "colours": {"#ff0000": "cut"}})
    assert r.status_code == 200
    assert r.json() == {"id": "inv-site", "name": "Biblioteka",
                        "colours": {"#ff0000": "cut"}}


def test_a_machine_running_a_job_is_not_deleted(stack: Stack, client: TestClient,
                                                admin: dict[str, str]) -> None:
    from fabqueue.store.models import Device

    client.put("/api/devices/inv-busy", headers=admin, json={**PRINTER, "id": "inv-busy"})
    job_id = insert_job(stack, stack.user("resident"), "kc", "running")
    with stack.ctx.db.session() as s:
        s.get(Device, "inv-busy").current_job_id = job_id
    r = client.delete("/api/devices/inv-busy", headers=admin)
    assert r.status_code == 409 and "inv-busy" in r.json()["detail"]
    with stack.ctx.db.session() as s:
        s.get(Device, "inv-busy").current_job_id = None
    assert client.delete("/api/devices/inv-busy", headers=admin).status_code == 204
    assert client.get("/api/devices/inv-busy", headers=admin).status_code == 404
