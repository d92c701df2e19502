"""Who gets what: every /api endpoint walked as every role and anonymously.

A new endpoint without an expectation here fails ``test_every_endpoint_has_expectations``.
Mutations get a fresh target per caller (written straight into the database), so one
caller's approval can't turn the next caller's answer into a 409.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Stack
from tests.helpers import (
    analysed,
    api_routes,
    cube_stl,
    english_client,
    insert_batch,
    insert_job,
    user_id,
)

ACTORS = ("anon", "resident", "resident2", "teacher", "teacher2", "staff", "staff_b", "admin")
_names = itertools.count()


@pytest.fixture
def client(stack: Stack) -> TestClient:
    return english_client(stack)


@dataclass
class World:
    stack: Stack
    names: dict[str, str]  # actor -> user name
    headers: dict[str, dict[str, str]]
    job: int  # the resident's analysed job at kc
    batch: int  # the teacher's class at kc
    batch_job: int
    other_site_job: int  # a school-b job of resident2

    def fresh_job(self, status: str, owner: str = "resident", **kw: Any) -> int:
        return insert_job(self.stack, self.names[owner], "kc", status, **kw)


@pytest.fixture(scope="module")
def world(stack: Stack) -> World:
    names = {"resident": stack.user("resident"), "resident2": stack.user("resident"),
             "teacher": stack.user("teacher", "kc"), "teacher2": stack.user("teacher", "kc"),
             "staff": stack.user("staff", "kc"), "staff_b": stack.user("staff", "school-b"),
             "admin": stack.user("admin")}
    with stack.client() as c:
        headers = {a: stack.token(c, n) for a, n in names.items()}
        headers["anon"] = {}
        job = analysed(c, headers["resident"], "mine.stl", cube_stl(18))
        assert job["status"] == "awaiting_approval" and job["site"] == "kc"
        r = c.post("/api/batches", headers=headers["teacher"],
                   data={"class_name": "7a", "material": "PLA"},
                   files=[("files", ("Ona_Onaite.stl", io.BytesIO(cube_stl(16)), "model/stl"))])
        assert r.status_code == 201, r.text
    batch = r.json()
    other = insert_job(stack, names["resident2"], "school-b", "awaiting_approval")
    return World(stack, names, headers, job["id"], batch["id"], batch["jobs"][0]["id"], other)


def expect(default: int, anon: int = 401, **by_actor: int) -> dict[str, int]:
    out = {a: default for a in ACTORS}
    out["anon"] = anon
    out.update(by_actor)
    return out


ALL = expect(200)
ADMIN_ONLY = expect(403, admin=200)
STAFF_OF_KC = expect(403, staff=200, admin=200)
SEES_RESIDENT_JOB = expect(403, resident=200, staff=200, admin=200)
SEES_BATCH = expect(403, teacher=200, staff=200, admin=200)


@dataclass
class Case:
    method: str
    path: str
    expected: dict[str, int]
    #: path parameters and request keywords for one caller (called once per caller)
    make: Callable[[World, str], tuple[dict[str, Any], dict[str, Any]]] = (
        lambda w, a: ({}, {}))
    missing: dict[str, Any] = field(default_factory=dict)  # kwargs for the 404 walk


def job_of(w: World, a: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return {"job_id": w.job}, {}


def upload_kwargs(w: World, a: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return {}, {"data": {"material": "PLA"},
                "files": {"file": ("m.stl", io.BytesIO(cube_stl(10)), "model/stl")}}


def batch_kwargs(w: World, a: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return {}, {"data": {"class_name": f"class-{a}", "material": "PLA"},
                "files": [("files", ("Jonas.stl", io.BytesIO(cube_stl(10)), "model/stl"))]}


def fresh(status: str, body: dict[str, Any] | None = None, **kw: Any
          ) -> Callable[[World, str], tuple[dict[str, Any], dict[str, Any]]]:
    def make(w: World, a: str) -> tuple[dict[str, Any], dict[str, Any]]:
        return {"job_id": w.fresh_job(status, **kw)}, ({"json": body} if body else {})
    return make


def fresh_batch(body: dict[str, Any] | None = None
                ) -> Callable[[World, str], tuple[dict[str, Any], dict[str, Any]]]:
    def make(w: World, a: str) -> tuple[dict[str, Any], dict[str, Any]]:
        batch_id, _ = insert_batch(w.stack, w.names["teacher"], "kc")
        return {"batch_id": batch_id}, ({"json": body} if body else {})
    return make


def on_device(body: dict[str, Any] | None = None
              ) -> Callable[[World, str], tuple[dict[str, Any], dict[str, Any]]]:
    def make(w: World, a: str) -> tuple[dict[str, Any], dict[str, Any]]:
        return {"device_id": "mk4-1"}, ({"json": body} if body else {})
    return make


def new_device(w: World, a: str) -> tuple[dict[str, Any], dict[str, Any]]:
    dev = f"matrix-{a}"
    return {"device_id": dev}, {"json": {
        "id": dev, "site": "kc", "kind": "printer", "driver": "simulated",
        "build_volume_mm": [100, 100, 100], "materials": ["PLA"], "enabled": False}}


def doomed_device(w: World, a: str) -> tuple[dict[str, Any], dict[str, Any]]:
    from fabqueue.store.inventory import DeviceIn, upsert_device

    dev = f"doomed-{a}"
    with w.stack.ctx.db.session() as s:
        upsert_device(s, DeviceIn(id=dev, site="kc", kind="printer", driver="simulated",
                                  build_volume_mm=(100, 100, 100), enabled=False))
    return {"device_id": dev}, {}


def token_form(w: World, a: str) -> tuple[dict[str, Any], dict[str, Any]]:
    if a == "anon":
        return {}, {"data": {"username": "nobody", "password": "wrong-password"}}
    name = w.names[a]
    return {}, {"data": {"username": name, "password": w.stack.passwords[name]}}


def new_user(w: World, a: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return {}, {"json": {"name": f"made-by-{a}-{next(_names)}", "password": "long-enough-1",
                         "role": "resident"}}


def patch_resident(w: World, a: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return {"user_id": user_id(w.stack, w.names["resident"])}, {
        "json": {"email": f"r{next(_names)}@example.org"}}


def doomed_user(w: World, a: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return {"user_id": user_id(w.stack, w.stack.user("resident"))}, {}


def pupil_of_class(w: World, a: str) -> tuple[dict[str, Any], dict[str, Any]]:
    from sqlalchemy import update

    from fabqueue.store.models import Job

    batch_id, jobs = insert_batch(w.stack, w.names["teacher"], "kc")
    with w.stack.ctx.db.session() as s:
        s.execute(update(Job).where(Job.id.in_(jobs)).values(pupil="8B-01",
                                                              student_name="Ona Onaitė"))
        s.commit()
    return {"batch_id": batch_id, "pupil": "8B-01"}, {}


def training_for(w: World, a: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Trainings (issue 17): an open training on mk4-1, granted to a fresh resident."""
    from fabqueue.store import trainings_file

    with w.stack.ctx.db.session() as s:
        trainings_file.apply(s, [trainings_file.TrainingIn(
            id="matrix-tr", devices=["mk4-1"], valid_days=0)], [trainings_file.MaintenanceIn(
                id="matrix-task", devices=["mk4-1"], every_days=36500)])
    return {"user_id": user_id(w.stack, w.names["resident"]), "training": "matrix-tr"}, {
        "json": {"training": "matrix-tr"}}


def granted(w: World, a: str) -> tuple[dict[str, Any], dict[str, Any]]:
    from datetime import date

    from sqlalchemy import select

    from fabqueue.store import trainings as st
    from fabqueue.store.models import User
    from fabqueue.store.models_trainings import TrainingDef

    params, _ = training_for(w, a)
    with w.stack.ctx.db.session() as s:
        u = s.scalar(select(User).where(User.name == w.stack.user("resident")))
        st.grant(s, u, s.get(TrainingDef, "matrix-tr"), date(2026, 1, 5), None)
        params["user_id"] = u.id
    return params, {}


def task_of(w: World, a: str) -> tuple[dict[str, Any], dict[str, Any]]:
    training_for(w, a)
    return {"device_id": "mk4-1", "task": "matrix-task"}, {"json": {"note": a}}


def outage(body: dict[str, Any] | None) -> Callable[[World, str],
                                                    tuple[dict[str, Any], dict[str, Any]]]:
    """A machine of its own per caller, out of order already when the case returns it."""
    def make(w: World, a: str) -> tuple[dict[str, Any], dict[str, Any]]:
        from fabqueue.store.models_trainings import DeviceOutage

        params, _ = doomed_device(w, f"ooo-{a}-{next(_names)}")
        if body is None:
            with w.stack.ctx.db.session() as s:
                s.add(DeviceOutage(device_id=params["device_id"], reason="matrix"))
        return params, ({"json": body} if body else {})
    return make


def done_job_pickup(state: str | None = None, body: bool = False
                    ) -> Callable[[World, str], tuple[dict[str, Any], dict[str, Any]]]:
    """Pickup (issue 18): a fresh done job of the resident at kc, its part waiting for pickup
    (``state`` moves it on, e.g. ``uncollected``); the token names it for the hand-over."""
    def make(w: World, a: str) -> tuple[dict[str, Any], dict[str, Any]]:
        from fabqueue.queue import pickup as service
        from fabqueue.store.models import Job

        job_id = w.fresh_job("done")
        with w.stack.ctx.db.session() as s:
            p = service.start(s, s.get(Job, job_id))
            assert p is not None
            if state:
                p.state = state
            places = service.site_places(s, "kc")
            params = {"job_id": job_id, "token": p.token}
        return params, ({"json": {"place": places[0] if places else "A1"}} if body else {})
    return make


def done_batch(w: World, a: str) -> tuple[dict[str, Any], dict[str, Any]]:
    batch_id, _ = insert_batch(w.stack, w.names["teacher"], "kc", status="done")
    return {"batch_id": batch_id}, {}


def notification_choice(w: World, a: str) -> tuple[dict[str, Any], dict[str, Any]]:
    from fabqueue.notify import EVENTS

    return {}, {"json": {"apprise_urls": [], "events": list(EVENTS)}}


def new_spool(w: World, site: str = "kc") -> int:
    from fabqueue.store.spools import SpoolIn, upsert_spool

    with w.stack.ctx.db.session() as s:
        _, sp = upsert_spool(s, SpoolIn(site=site, material="PLA", net_g=1000))
        s.flush()
        return sp.id


def spool_of_kc(body: dict[str, Any] | None = None
                ) -> Callable[[World, str], tuple[dict[str, Any], dict[str, Any]]]:
    """Spools (issue 18): a fresh kc spool per caller, so one weighing can't change the next."""
    def make(w: World, a: str) -> tuple[dict[str, Any], dict[str, Any]]:
        return {"spool_id": new_spool(w)}, ({"json": body} if body else {})
    return make


def spool_on_printer(w: World, a: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A kc printer of its own per caller (mk4-1's loaded material stays as it is)."""
    params, _ = doomed_device(w, f"spool-{a}-{next(_names)}")
    return params, {"json": {"spool": new_spool(w)}}


def new_spool_body(w: World, a: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return {}, {"json": {"site": "kc", "material": "PLA", "colour": f"matrix-{a}"}}


DEVICE_CONTROL = expect(403, staff=409, admin=409)  # allowed, but mk4-1 runs nothing
CHECKLIST = {"job": 1, "checklist": {"material": True, "focus": True, "air": True,
                                     "lid": True}}

CASES = [
    Case("GET", "/api/health", expect(200, anon=200)),
    Case("POST", "/api/auth/token", expect(200), token_form),
    Case("GET", "/api/me", ALL),
    Case("GET", "/api/jobs", ALL),
    Case("POST", "/api/jobs", expect(201), upload_kwargs),
    Case("GET", "/api/jobs/{job_id}", SEES_RESIDENT_JOB, job_of),
    Case("GET", "/api/jobs/{job_id}/events", SEES_RESIDENT_JOB, job_of),
    Case("GET", "/api/jobs/{job_id}/file", SEES_RESIDENT_JOB, job_of),
    Case("GET", "/api/jobs/{job_id}/thumbnail", SEES_RESIDENT_JOB, job_of),
    # visible to the same people, but there is no program before slicing
    Case("GET", "/api/jobs/{job_id}/program",
         expect(403, resident=404, staff=404, admin=404), job_of),
    Case("POST", "/api/jobs/{job_id}/approve", STAFF_OF_KC, fresh("awaiting_approval")),
    Case("POST", "/api/jobs/{job_id}/reject", STAFF_OF_KC,
         fresh("awaiting_approval", {"reason": "walls too thin"}),
         missing={"json": {"reason": "x"}}),
    Case("POST", "/api/jobs/{job_id}/cancel", SEES_RESIDENT_JOB, fresh("awaiting_approval")),
    # the owner and staff may choose a laser drawing's colours; the world's job is a print
    Case("POST", "/api/jobs/{job_id}/colours", expect(403, resident=409, staff=409, admin=409),
         lambda w, a: ({"job_id": w.job}, {"json": {"choice": {}}}),
         missing={"json": {"choice": {}}}),
    Case("POST", "/api/jobs/{job_id}/requeue", STAFF_OF_KC, fresh("failed", program=True)),
    Case("POST", "/api/jobs/{job_id}/fail", STAFF_OF_KC, fresh("interrupted")),
    Case("POST", "/api/jobs/{job_id}/move", STAFF_OF_KC, fresh("ready", {"front": True}),
         missing={"json": {"front": True}}),
    Case("GET", "/api/batches", ALL),
    Case("POST", "/api/batches", expect(201, resident=403, resident2=403), batch_kwargs),
    Case("GET", "/api/batches/{batch_id}", SEES_BATCH,
         lambda w, a: ({"batch_id": w.batch}, {})),
    Case("POST", "/api/batches/{batch_id}/approve", STAFF_OF_KC, fresh_batch()),
    Case("POST", "/api/batches/{batch_id}/reject", STAFF_OF_KC,
         fresh_batch({"reason": "too much plastic"}), missing={"json": {"reason": "x"}}),
    Case("GET", "/api/devices", ALL),
    Case("GET", "/api/devices/{device_id}", ALL, on_device()),
    Case("PUT", "/api/devices/{device_id}", ADMIN_ONLY, new_device),
    Case("DELETE", "/api/devices/{device_id}", expect(403, admin=204), doomed_device),
    Case("POST", "/api/devices/{device_id}/bed-cleared", DEVICE_CONTROL, on_device()),
    Case("POST", "/api/devices/{device_id}/start", DEVICE_CONTROL, on_device(CHECKLIST),
         missing={"json": CHECKLIST}),
    Case("POST", "/api/devices/{device_id}/frame", DEVICE_CONTROL, on_device({"job": 1}),
         missing={"json": {"job": 1}}),
    Case("POST", "/api/devices/{device_id}/pause", DEVICE_CONTROL, on_device()),
    Case("POST", "/api/devices/{device_id}/resume", DEVICE_CONTROL, on_device()),
    Case("POST", "/api/devices/{device_id}/cancel", DEVICE_CONTROL, on_device()),
    Case("POST", "/api/devices/{device_id}/stop", STAFF_OF_KC, on_device()),
    Case("POST", "/api/devices/{device_id}/reset", STAFF_OF_KC, on_device()),
    # allowed, but no device worker runs in the test stack: "no worker answered"
    Case("POST", "/api/devices/{device_id}/test", expect(403, staff=504, admin=504),
         on_device()),
    Case("GET", "/api/sites", ALL),
    Case("PUT", "/api/sites/{site_id}", ADMIN_ONLY,
         lambda w, a: ({"site_id": "matrix-site"}, {"json": {"id": "matrix-site",
                                                             "name": "Matrix"}})),
    Case("GET", "/api/materials", ALL),
    Case("PUT", "/api/materials/{material_id}", ADMIN_ONLY,
         lambda w, a: ({"material_id": "matrix-pla"}, {"json": {
             "id": "matrix-pla", "kind": "filament", "density_g_cm3": 1.24}})),
    Case("GET", "/api/users", ADMIN_ONLY),
    Case("POST", "/api/users", expect(403, admin=201), new_user),
    Case("PATCH", "/api/users/{user_id}", expect(403, resident=200, admin=200), patch_resident,
         missing={"json": {"email": "x@example.org"}}),
    Case("GET", "/api/events", ALL),
    Case("GET", "/api/queue", ALL),
    # privacy (issue 21): a wrong password never erases; a fresh account or pupil per caller
    Case("GET", "/api/me/export", ALL),
    Case("DELETE", "/api/me", expect(403),
         lambda w, a: ({}, {"json": {"password": "not-the-password"}})),
    Case("DELETE", "/api/users/{user_id}", ADMIN_ONLY, doomed_user),
    Case("DELETE", "/api/batches/{batch_id}/pupils/{pupil}", expect(403, teacher=200,
                                                                     admin=200), pupil_of_class),
    # trainings and maintenance (issue 17): any staff grant an open training (they hold
    # across sites); a person sees their own; a site's staff keep its machines' records
    Case("GET", "/api/trainings", ALL),
    Case("GET", "/api/users/{user_id}/trainings",
         expect(403, resident=200, staff=200, staff_b=200, admin=200), training_for),
    Case("POST", "/api/users/{user_id}/trainings",
         expect(403, staff=201, staff_b=201, admin=201), training_for,
         missing={"json": {"training": "matrix-tr"}}),
    Case("DELETE", "/api/users/{user_id}/trainings/{training}",
         expect(403, staff=200, staff_b=200, admin=200), granted),
    Case("GET", "/api/devices/{device_id}/maintenance", ALL, on_device()),
    Case("POST", "/api/devices/{device_id}/maintenance/{task}/done", STAFF_OF_KC, task_of,
         missing={"json": {}}),
    Case("POST", "/api/devices/{device_id}/out-of-order", STAFF_OF_KC,
         outage({"reason": "smoke"}), missing={"json": {"reason": "x"}}),
    Case("DELETE", "/api/devices/{device_id}/out-of-order", STAFF_OF_KC, outage(None)),
    # pickup (issue 18): a site's staff shelve, label, hand over and dispose of its parts;
    # the owner sees the pickup of their job; a class's teacher collects the class at once
    Case("GET", "/api/jobs/{job_id}/pickup", SEES_RESIDENT_JOB, job_of),
    Case("POST", "/api/jobs/{job_id}/pickup/place", STAFF_OF_KC,
         done_job_pickup(body=True), missing={"json": {"place": "A1"}}),
    Case("GET", "/api/jobs/{job_id}/label", STAFF_OF_KC, done_job_pickup()),
    Case("POST", "/api/jobs/{job_id}/pickup/disposed", STAFF_OF_KC,
         done_job_pickup("uncollected")),
    Case("POST", "/api/pickup/{token}", STAFF_OF_KC, done_job_pickup()),
    Case("GET", "/api/pickup", expect(403, staff=200, staff_b=200, admin=200)),
    Case("POST", "/api/batches/{batch_id}/collected", SEES_BATCH, done_batch),
    Case("GET", "/api/me/notifications", ALL),
    Case("PUT", "/api/me/notifications", ALL, notification_choice),
    Case("GET", "/api/notifications/failed", ADMIN_ONLY),
    # spools (issue 18): everyone signed in sees the stock; a site's staff change its spools
    Case("GET", "/api/spools", ALL),
    Case("POST", "/api/spools", expect(403, staff=201, admin=201), new_spool_body),
    Case("GET", "/api/spools/{spool_id}", ALL, spool_of_kc()),
    Case("PATCH", "/api/spools/{spool_id}", STAFF_OF_KC, spool_of_kc({"place": "shelf 2"}),
         missing={"json": {"place": "x"}}),
    Case("POST", "/api/spools/{spool_id}/weigh", STAFF_OF_KC, spool_of_kc({"gross_g": 800}),
         missing={"json": {"gross_g": 800}}),
    Case("POST", "/api/devices/{device_id}/spool", STAFF_OF_KC, spool_on_printer,
         missing={"json": {"spool": None}}),
    Case("POST", "/api/jobs/{job_id}/accept-filament-risk", STAFF_OF_KC, fresh("ready")),
]


def call(client: TestClient, method: str, url: str, headers: dict[str, str],
         **kwargs: Any) -> int:
    if url == "/api/events":  # a stream that never ends: ask it to stop after "hello"
        with client.stream(method, url, headers=headers, params={"limit": 1}) as r:
            if r.status_code == 200:
                assert r.headers["content-type"].startswith("text/event-stream")
                first = next(line for line in r.iter_lines() if line)
                assert first == "event: hello"
            return r.status_code
    r = client.request(method, url, headers=headers, **kwargs)
    if r.status_code >= 400:
        body = r.json()
        assert isinstance(body.get("detail"), str) and body["detail"], (url, body)
    return r.status_code


def test_every_endpoint_has_expectations(stack: Stack) -> None:
    routes = set(api_routes(stack.app))
    covered = {(c.method, c.path) for c in CASES}
    assert routes - covered == set(), "endpoints without an access expectation"
    assert covered - routes == set(), "expectations for endpoints that no longer exist"


def test_access_matrix(world: World, client: TestClient) -> None:
    wrong = []
    for case in CASES:
        for actor in ACTORS:
            params, kwargs = case.make(world, actor)
            got = call(client, case.method, case.path.format(**params),
                       world.headers[actor], **kwargs)
            if got != case.expected[actor]:
                wrong.append(f"{case.method} {case.path} as {actor}: {got}, "
                             f"expected {case.expected[actor]}")
    assert wrong == []


def test_unknown_ids_are_404(world: World, client: TestClient) -> None:
    wrong = []
    for case in CASES:
        if "{" not in case.path or case.method == "PUT":  # PUT creates what is missing
            continue
        params = {k: ("999999" if k.endswith(("job_id", "batch_id", "user_id", "spool_id"))
                      else "no-such")
                  for k in case.make(world, "admin")[0]}
        got = call(client, case.method, case.path.format(**params), world.headers["admin"],
                   **case.missing)
        if got != 404:
            wrong.append(f"{case.method} {case.path}: {got}")
    assert wrong == []


def ids(client: TestClient, headers: dict[str, str], url: str = "/api/jobs") -> set[int]:
    r = client.get(url, headers=headers, params={"limit": 200})
    assert r.status_code == 200
    return {j["id"] for j in r.json()["items"]}


def test_job_lists_show_only_what_each_role_may_see(world: World, client: TestClient) -> None:
    h = world.headers
    mine = ids(client, h["resident"])
    assert world.job in mine and world.batch_job not in mine
    owners = {j["owner"] for j in client.get("/api/jobs", headers=h["resident"],
                                              params={"limit": 200}).json()["items"]}
    assert owners == {user_id(world.stack, world.names["resident"])}
    assert world.job not in ids(client, h["resident2"])
    assert world.batch_job in ids(client, h["teacher"])
    assert world.batch_job not in ids(client, h["teacher2"])
    assert world.job not in ids(client, h["teacher"])
    staff = client.get("/api/jobs", headers=h["staff"], params={"limit": 200}).json()["items"]
    assert {world.job, world.batch_job} <= {j["id"] for j in staff}
    assert {j["site"] for j in staff} <= {"kc", None}
    assert world.other_site_job not in {j["id"] for j in staff}
    assert world.other_site_job in ids(client, h["staff_b"])
    assert world.job not in ids(client, h["staff_b"])
    assert {world.job, world.batch_job, world.other_site_job} <= ids(client, h["admin"])


def test_teacher_sees_the_jobs_of_their_batch(world: World, client: TestClient) -> None:
    h = world.headers
    assert client.get(f"/api/jobs/{world.batch_job}", headers=h["teacher"]).status_code == 200
    assert client.get(f"/api/jobs/{world.batch_job}", headers=h["teacher2"]).status_code == 403
    listed = client.get("/api/batches", headers=h["teacher"]).json()
    assert world.batch in {b["id"] for b in listed}
    assert world.batch not in {b["id"] for b in client.get(
        "/api/batches", headers=h["teacher2"]).json()}
    assert client.get("/api/batches", headers=h["resident"]).json() == []
    assert world.batch not in {b["id"] for b in client.get(
        "/api/batches", headers=h["staff_b"]).json()}


def test_machine_settings_for_staff_and_connections_only_for_admins(
        world: World, client: TestClient) -> None:
    resident = client.get("/api/devices/mk4-1", headers=world.headers["resident"]).json()
    staff = client.get("/api/devices/mk4-1", headers=world.headers["staff"]).json()
    other = client.get("/api/devices/mk4-1", headers=world.headers["staff_b"]).json()
    admin = client.get("/api/devices/mk4-1", headers=world.headers["admin"]).json()
    assert "connection" not in resident and "settings" not in resident
    assert "settings" in staff
    assert "connection" not in staff and "connection" not in other  # issue 8 item 14
    assert "connection" in admin
    listed = client.get("/api/devices", headers=world.headers["staff_b"]).json()
    assert all("connection" not in d for d in listed)


def test_bad_tokens_are_401_in_words(client: TestClient) -> None:
    for token in ("garbage", "eyJ1aWQiOjF9.forged.signature"):
        r = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert "Sign in" in r.json()["detail"]


def test_openapi_documents_every_endpoint(stack: Stack, client: TestClient) -> None:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    documented = {(m.upper(), p) for p, ops in paths.items() for m in ops}
    missing = set(api_routes(stack.app)) - documented
    assert missing == set()
    upload = paths["/api/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert {"file", "material"} <= set(upload["schema"]["required"])


def test_errors_are_json_detail_with_4xx(world: World, client: TestClient) -> None:
    h = world.headers["staff"]
    cases = [
        client.get("/api/jobs/not-a-number", headers=h),
        client.post(f"/api/jobs/{world.job}/reject", headers=h, json={}),
        client.get("/api/jobs", headers=h, params={"status": "nonsense"}),
        client.get("/api/nothing-here", headers=h),
        client.post("/api/auth/token", data={}),
    ]
    for r in cases:
        assert 400 <= r.status_code < 500, r.text
        assert r.headers["content-type"].startswith("application/json")
        assert isinstance(r.json()["detail"], str) and r.json()["detail"]


def test_queue_shows_whose_jobs_only_to_their_owner_and_the_sites_staff(
        world: World, client: TestClient) -> None:
    waiting = world.fresh_job("ready", owner="resident2")
    h = world.headers

    def queue(actor: str) -> list[dict[str, Any]]:
        r = client.get("/api/queue", headers=h[actor], params={"site": "kc"})
        assert r.status_code == 200
        return r.json()

    # the job's place in the queue is the same for everyone; what is shown of it is not
    position = next(e["position"] for e in queue("admin") if e["job"] == waiting)

    def entry(actor: str) -> dict[str, Any]:
        return next(e for e in queue(actor) if e["position"] == position)

    assert entry("resident2")["mine"] is True
    assert entry("resident2")["file_name"] == "cube.stl"
    assert entry("staff")["job"] == waiting and entry("staff")["owner"] is not None
    for actor in ("resident", "teacher", "staff_b"):
        seen = entry(actor)
        assert seen["job"] is None and seen["file_name"] is None and seen["owner"] is None, (
            actor, seen)


def test_users_cannot_raise_their_own_role(world: World, client: TestClient) -> None:
    me = user_id(world.stack, world.names["resident"])
    for change in ({"role": "admin"}, {"site": "kc"}, {"quota_g_month": 1e9},
                   {"disabled": False}):
        r = client.patch(f"/api/users/{me}", headers=world.headers["resident"], json=change)
        assert r.status_code == 403, change
    assert client.get("/api/me", headers=world.headers["resident"]).json()["role"] == "resident"
    r = client.patch(f"/api/users/{me}", headers=world.headers["resident"],
                     json={"locale": "ru"})
    assert r.status_code == 200 and r.json()["locale"] == "ru"
    client.patch(f"/api/users/{me}", headers=world.headers["resident"], json={"locale": "en"})


def test_a_disabled_account_loses_its_token(world: World, client: TestClient) -> None:
    name = world.stack.user("resident")
    headers = world.stack.token(client, name)
    assert client.get("/api/me", headers=headers).status_code == 200
    r = client.patch(f"/api/users/{user_id(world.stack, name)}",
                     headers=world.headers["admin"], json={"disabled": True})
    assert r.status_code == 200 and r.json()["disabled"] is True
    r = client.get("/api/me", headers=headers)
    assert r.status_code == 401 and "disabled" in r.json()["detail"]
    r = client.post("/api/auth/token",
                    data={"username": name, "password": world.stack.passwords[name]})
    assert r.status_code == 401


def page_csrf(html: str) -> str:
    import re

    found = re.search(r'name="csrf[-_]token" (?:value|content)="([^"]+)"', html)
    assert found, "the page carries a CSRF token"
    return found.group(1)


def test_cookie_sessions_need_the_csrf_token_for_changes(world: World, stack: Stack) -> None:
    """The web's session cookie also works on the API, but a change needs the session's CSRF
    token: a form on another site can't cancel a resident's job."""
    name = world.names["resident"]
    with english_client(stack) as browser:
        token = page_csrf(browser.get("/login").text)
        r = browser.post("/login", data={"username": name, "password": stack.passwords[name],
                                         "csrf_token": token}, follow_redirects=False)
        assert r.status_code in (302, 303), r.text
        assert browser.get("/api/me").json()["name"] == name
        job = world.fresh_job("awaiting_approval")
        forged = browser.post(f"/api/jobs/{job}/cancel")
        assert forged.status_code == 403 and "Reload the page" in forged.json()["detail"]
        wrong = browser.post(f"/api/jobs/{job}/cancel", headers={"X-CSRF-Token": "guess"})
        assert wrong.status_code == 403
        assert stack.job(job).status == "awaiting_approval"
        token = page_csrf(browser.get("/").text)
        ok = browser.post(f"/api/jobs/{job}/cancel", headers={"X-CSRF-Token": token})
        assert ok.status_code == 200 and ok.json()["status"] == "cancelled"
