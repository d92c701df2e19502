"""Spools through the API (``/api/spools``, weighing, loading on a printer) and the devices
file's ``[[spool]]`` tables; the ledger takes a job's grams off once, however many
sessions see its end at once."""

from __future__ import annotations

import secrets
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from fabqueue.store import inventory
from fabqueue.store.models import Device
from fabqueue.store.models_spools import Spool, SpoolUsage
from fabqueue.store.spools import record_usage
from tests.conftest import Stack
from tests.helpers import english_client
from tests.queue.helpers import new_site, printer, ready_jobs


@pytest.fixture
def client(stack: Stack) -> TestClient:
    return english_client(stack)


@pytest.fixture
def site(stack: Stack) -> str:
    return new_site(stack, [printer(f"sa-{secrets.token_hex(2)}", ["PLA", "PETG"])])


@pytest.fixture(scope="module")
def admin(stack: Stack) -> dict[str, str]:
    with stack.client() as c:
        return stack.token(c, stack.user("admin"))


def _printer(stack: Stack, site: str) -> str:
    with stack.ctx.db.session() as s:
        return str(s.scalar(select(Device.id).where(Device.site_id == site)))


def test_staff_add_weigh_patch_and_load_a_spool(stack: Stack, client: TestClient,
                                                site: str) -> None:
    staff = stack.token(client, stack.user("staff", site))
    body = {"site": site, "material": "PETG", "colour": "black", "brand": "Prusament",
            "lot": "L-42", "net_g": 1000, "empty_g": 250, "place": "shelf B"}
    r = client.post("/api/spools", headers=staff, json=body)
    assert r.status_code == 201, r.text
    sp = r.json()
    assert (sp["remaining_g"], sp["colour"], sp["loaded_on"]) == (1000, "black", None)
    r = client.post(f"/api/spools/{sp['id']}/weigh", headers=staff, json={"gross_g": 730.4})
    assert r.status_code == 200 and r.json()["remaining_g"] == 480.4
    r = client.patch(f"/api/spools/{sp['id']}", headers=staff, json={"place": "drawer 2"})
    assert r.status_code == 200 and r.json()["place"] == "drawer 2"
    assert r.json()["remaining_g"] == 480.4  # untouched by a patch that does not name it
    dev = _printer(stack, site)
    r = client.post(f"/api/devices/{dev}/spool", headers=staff, json={"spool": sp["id"]})
    assert r.status_code == 200, r.text
    assert r.json()["loaded_material"] == "PETG"  # the printer's material follows the spool
    shown = client.get(f"/api/devices/{dev}", headers=staff).json()
    assert (shown["loaded_material"], shown["spool"]) == ("PETG", sp["id"])
    listed = client.get(f"/api/spools?site={site}", headers=staff).json()
    assert [(x["id"], x["loaded_on"]) for x in listed] == [(sp["id"], dev)]
    r = client.post(f"/api/devices/{dev}/spool", headers=staff, json={"spool": None})
    assert r.status_code == 200 and r.json()["spool"] is None
    assert client.get(f"/api/spools/{sp['id']}", headers=staff).json()["loaded_on"] is None


def test_others_may_look_but_not_change(stack: Stack, client: TestClient, site: str) -> None:
    staff = stack.token(client, stack.user("staff", site))
    sp = client.post("/api/spools", headers=staff,
                     json={"site": site, "material": "PLA"}).json()
    resident = stack.token(client, stack.user("resident"))
    other_staff = stack.token(client, stack.user("staff", "kc"))
    assert client.get(f"/api/spools/{sp['id']}", headers=resident).status_code == 200
    assert client.post("/api/spools", headers=resident,
                       json={"site": site, "material": "PLA"}).status_code == 403
    for who in (resident, other_staff):
        assert client.post(f"/api/spools/{sp['id']}/weigh", headers=who,
                           json={"gross_g": 100}).status_code == 403
        assert client.patch(f"/api/spools/{sp['id']}", headers=who,
                            json={"place": "x"}).status_code == 403
        assert client.post(f"/api/devices/{_printer(stack, site)}/spool", headers=who,
                           json={"spool": sp["id"]}).status_code == 403


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("post", "/api/spools", {"site": "nowhere", "material": "PLA"}, 422),
    ("post", "/api/spools", {"site": "{site}", "material": "PLA", "net_g": -5}, 422),
    ("post", "/api/spools", {"site": "{site}", "material": "PLA", "secret": 1}, 422),
    ("post", "/api/spools/{spool}/weigh", {"gross_g": "heavy"}, 422),
    ("post", "/api/spools/{spool}/weigh", {"gross_g": 1e300}, 422),
    ("post", "/api/spools/999999999/weigh", {"gross_g": 10}, 404),
    ("post", "/api/spools/99999999999999999999/weigh", {"gross_g": 10}, 404),
    ("patch", "/api/spools/{spool}", {"net_g": 0}, 422),
    ("post", "/api/devices/{device}/spool", {"spool": 999999999}, 404),
    ("post", "/api/devices/{device}/spool", {}, 422),
    ("post", "/api/devices/no-such-printer/spool", {"spool": 1}, 404),
])
def test_bad_input_is_a_clear_4xx(stack: Stack, client: TestClient, site: str, method: str,
                                  path: str, body: dict[str, object], status: int,
                                  admin: dict[str, str]) -> None:
    spool = client.post("/api/spools", headers=admin,
                        json={"site": site, "material": "PLA"}).json()["id"]
    fill = {"site": site, "spool": spool, "device": _printer(stack, site)}
    path = path.format(**fill)
    body = {k: (v.format(**fill) if isinstance(v, str) else v) for k, v in body.items()}
    r = getattr(client, method)(path, headers=admin, json=body)
    assert r.status_code == status, r.text
    assert "detail" in r.json()


def test_a_spool_of_another_site_or_material_is_not_loaded(stack: Stack, client: TestClient,
                                                           site: str, admin: dict[str, str]
                                                           ) -> None:
    elsewhere = client.post("/api/spools", headers=admin,
                            json={"site": "kc", "material": "PLA"}).json()
    asa = client.post("/api/spools", headers=admin,
                      json={"site": site, "material": "ASA"}).json()
    dev = _printer(stack, site)
    r = client.post(f"/api/devices/{dev}/spool", headers=admin, json={"spool": elsewhere["id"]})
    assert r.status_code == 422 and "another site" in r.json()["detail"]
    r = client.post(f"/api/devices/{dev}/spool", headers=admin, json={"spool": asa["id"]})
    assert r.status_code == 422 and "ASA" in r.json()["detail"]


def test_a_spool_moved_to_another_printer_leaves_the_first(stack: Stack, client: TestClient
                                                           ) -> None:
    a, b = f"mv-{secrets.token_hex(2)}", f"mv-{secrets.token_hex(2)}"
    site = new_site(stack, [printer(a, ["PLA"]), printer(b, ["PLA"])])
    staff = stack.token(client, stack.user("staff", site))
    sp = client.post("/api/spools", headers=staff, json={"site": site, "material": "PLA"}).json()
    for dev in (a, b):
        assert client.post(f"/api/devices/{dev}/spool", headers=staff,
                           json={"spool": sp["id"]}).status_code == 200
    with stack.ctx.db.session() as s:
        assert s.get(Device, a).spool_id is None  # type: ignore[union-attr]
        assert s.get(Device, b).spool_id == sp["id"]  # type: ignore[union-attr]


def test_devices_file_spools_import_once_and_update(stack: Stack, tmp_path: Path) -> None:
    site = new_site(stack, [])
    code = f"imp-{secrets.token_hex(3)}"
    toml = tmp_path / "lab.toml"
    toml.write_text(f"""
[[spool]]
id = "{code}"
site = "{site}"
material = "PLA"
colour = "orange"
brand = "Fiberlogy"
net_g = 850
empty_g = 230
place = "A1"
""", encoding="utf-8")
    for _ in range(2):
        r = subprocess.run([sys.executable, "-m", "fabqueue", "devices", "import", str(toml)],
                           env=stack.env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
    assert f"spool {code}" in r.stdout and "updated" in r.stdout
    with stack.ctx.db.session() as s:  # the stack's own database, SQLite or PostgreSQL
        rows = [(sp.material, sp.colour, sp.remaining_g, sp.place)
                for sp in s.scalars(select(Spool).where(Spool.code == code))]
    assert rows == [("PLA", "orange", 850.0, "A1")]
    with stack.ctx.db.session() as s, pytest.raises(ValueError, match="does not exist"):
        inventory.apply(s, {"spool": [{"id": "x", "site": "nowhere", "material": "PLA"}]})


def test_an_end_seen_by_many_sessions_at_once_is_taken_off_once(stack: Stack) -> None:
    dev = f"led-{secrets.token_hex(2)}"
    site = new_site(stack, [printer(dev, ["PLA"])])
    (job_id,) = ready_jobs(stack, site, 1, fits=[dev])
    with stack.ctx.db.session() as s:
        from fabqueue.store.models import Job
        from fabqueue.store.spools import SpoolIn, load, upsert_spool

        s.get(Job, job_id).slice_result = {"filament_g": 40.0}  # type: ignore[union-attr]
        _, sp = upsert_spool(s, SpoolIn(site=site, material="PLA", remaining_g=500))
        s.flush()
        load(s, s.get(Device, dev), sp)  # type: ignore[arg-type]
        spool_id = sp.id
    barrier = threading.Barrier(4)
    taken: list[float | None] = []
    errors: list[BaseException] = []

    def end() -> None:
        try:
            barrier.wait()
            with stack.ctx.db.session() as s:
                job = s.get(Job, job_id)
                taken.append(record_usage(s, job, s.get(Device, dev), "interrupted",  # type: ignore[arg-type]
                                          progress=50.0))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=end) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert sorted(taken, key=lambda x: x or 0) == [None, None, None, 20.0]
    with stack.ctx.db.session() as s:
        assert s.scalar(select(func.count()).select_from(SpoolUsage).where(
            SpoolUsage.job_id == job_id)) == 1
        assert s.get(Spool, spool_id).remaining_g == 480.0  # type: ignore[union-attr]


def test_a_trained_owner_loads_material_for_their_own_job(
        stack: Stack, client: TestClient, site: str) -> None:
    """Issue 17: a trained resident loads material for their own approved job as staff do;
    untrained, or for someone else's job, they get 403 and the machine keeps its spool."""
    from tests.helpers import insert_job

    dev = _printer(stack, site)
    tag = secrets.token_hex(2)
    with stack.ctx.db.session() as s:
        inventory.apply(s, {"training": [{"id": f"pr-{tag}", "devices": [dev],
                                          "valid_days": 365}]})
    staff = stack.token(client, stack.user("staff", site))
    owner, other = stack.user("resident"), stack.user("resident")
    r_owner = stack.token(client, owner)
    sp = client.post("/api/spools", headers=staff, json={
        "site": site, "material": "PLA", "net_g": 1000, "empty_g": 250}).json()["id"]
    job = insert_job(stack, owner, site, "ready", program=True)
    theirs = insert_job(stack, other, site, "ready", program=True)
    load = {"spool": sp, "job": job}
    untrained = client.post(f"/api/devices/{dev}/spool", headers=r_owner, json=load)
    assert untrained.status_code == 403 and untrained.json()["code"] == "training_required"
    assert client.post(f"/api/devices/{dev}/spool", headers=r_owner,
                       json={"spool": sp}).status_code == 403  # no job named: staff only
    owner_id = client.get("/api/me", headers=r_owner).json()["id"]
    assert client.post(f"/api/users/{owner_id}/trainings", headers=staff,
                       json={"training": f"pr-{tag}"}).status_code == 201
    mine = client.post(f"/api/devices/{dev}/spool", headers=r_owner, json=load)
    assert mine.status_code == 200, mine.text
    assert mine.json()["loaded_material"] == "PLA"
    not_mine = client.post(f"/api/devices/{dev}/spool", headers=r_owner,
                           json={"spool": None, "job": theirs})
    assert not_mine.status_code == 403
    assert client.get(f"/api/devices/{dev}", headers=staff).json()["spool"] == sp
