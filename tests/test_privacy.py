"""Pupils' privacy (issue 21) on a FabQueue of this module's own: pseudonyms and who reads
names (a matrix of roles × surfaces), export, erasure of an account or a pupil, and the
retention purge on a faked clock. Every erasure and purge is checked by scanning every table
(all columns, from the SQLAlchemy metadata) and the file store for any trace of the person.

The stack is this module's own (its own SQLite, or its own PostgreSQL database and Redis
number on the external pass): a purge on a clock years ahead erases accounts, which must not
touch the session's shared stack.
"""

from __future__ import annotations

import csv
import io
import json
import secrets
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from tests.conftest import EXTERNAL, Stack, own_database, own_redis
from tests.helpers import cube_stl

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Named ``stack`` so that the external pass runs this module on PostgreSQL too."""
    from fabqueue.config import Settings
    from fabqueue.demo import seed_demo
    from fabqueue.queue.context import Context
    from fabqueue.queue.embedded import EmbeddedRedis
    from fabqueue.web.app import create_app

    data_dir = tmp_path_factory.mktemp("privacy")
    env = {**own_database("privacy-tests"), "FABQUEUE_DATA_DIR": str(data_dir)}
    owner = None
    if EXTERNAL:
        env.update(own_redis(11))
    else:
        owner = EmbeddedRedis(data_dir).start()
        env["REDIS_URL"] = owner.url
    settings = Settings(data_dir=data_dir, redis_url=env["REDIS_URL"],
                        database_url=env.get("DATABASE_URL"))
    ctx = Context(settings)
    ctx.db.migrate()
    ctx.install_publisher()
    out = io.StringIO()
    seed_demo(ctx, echo=lambda m: out.write(m + "\n"))
    s = Stack(data_dir, ctx, create_app(ctx), env, owner)
    for line in out.getvalue().splitlines()[1:]:
        _, name, password = line.split()
        s.passwords[name] = password
    yield s
    if owner is not None:
        owner.stop()


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[TestClient]:
    with TestClient(stack.app) as c:
        yield c


def person(stack: Stack, client: TestClient, role: str, site: str | None = None,
           name: str | None = None) -> tuple[str, dict[str, str]]:
    name = stack.user(role, site, name)
    return name, stack.token(client, name)


def hand_in(client: TestClient, headers: dict[str, str], files: list[tuple[str, bytes]],
            class_name: str = "10b", **fields: str) -> Any:
    return client.post("/api/batches", headers=headers,
                       data={"class_name": class_name, "material": "PLA", **fields},
                       files=[("files", (n, io.BytesIO(d), "application/octet-stream"))
                              for n, d in files])


def marked_stl(marker: str) -> bytes:
    """A valid STL whose bytes carry ``marker`` (in its header): to find in the file store."""
    data = cube_stl(10)  # binary: an 80-byte header nobody reads, then the triangles
    return marker.encode()[:80].ljust(80, b" ") + data[80:]


def every_value(stack: Stack) -> list[tuple[str, str, str]]:
    """(table, column, text) of every non-empty value in every table of the metadata."""
    from fabqueue.store.models import Base

    found = []
    with stack.ctx.db.session() as s:
        for table in Base.metadata.sorted_tables:
            for row in s.execute(select(table)).mappings():
                for column, value in row.items():
                    if value is None:
                        continue
                    text = value if isinstance(value, str) else json.dumps(value, default=str,
                                                                           ensure_ascii=False)
                    found.append((table.name, column, text))
    return found


def traces(stack: Stack, needles: list[str]) -> list[tuple[str, str, str]]:
    lowered = [n.casefold() for n in needles]
    return [(t, c, v[:80]) for t, c, v in every_value(stack)
            if any(n in v.casefold() for n in lowered)]


def files_holding(stack: Stack, marker: bytes) -> list[Path]:
    return [p for p in Path(stack.ctx.settings.files_path).rglob("*")
            if p.is_file() and marker in p.read_bytes()]


def stats(stack: Stack) -> list[tuple[Any, ...]]:
    """The statistics page's rows, as an admin sees them (every site)."""
    from fabqueue.store.models import User
    from fabqueue.web.pages.stats import month_rows

    with stack.ctx.db.session() as s:
        admin = s.scalars(select(User).where(User.name == "admin")).one()
        return [(r.site, r.month, r.jobs, r.done, r.failed, round(r.grams, 3),
                 round(r.hours, 3)) for r in month_rows(s, admin, NOW)]


def finish(stack: Stack, job_ids: list[int], at: datetime, status: str = "done") -> None:
    """Jobs as if printed: ended at ``at`` with grams and hours for the statistics."""
    from fabqueue.store.models import Job

    with stack.ctx.db.session() as s:
        s.execute(update(Job).where(Job.id.in_(job_ids)).values(
            status=status, finished_at=at, updated_at=at, actual_seconds=1800.0,
            device_id="mk4-1", analysis={"ok": True, "material_g": 12.5,
                                         "estimated_seconds": 1700}))
        s.commit()


# ------------------------------------------------------------------ pseudonyms and names


@pytest.fixture(scope="module")
def lab(stack: Stack, client: TestClient) -> dict[str, Any]:
    """A class of 10b at kc handed in by its teacher, and one person of every kind."""
    people = {"teacher": person(stack, client, "teacher", "kc"),
              "teacher2": person(stack, client, "teacher", "kc"),
              "staff": person(stack, client, "staff", "kc"),
              "staff_b": person(stack, client, "staff", "school-b"),
              "resident": person(stack, client, "resident"),
              "admin": ("admin", stack.token(client, "admin"))}
    r = hand_in(client, people["teacher"][1],
                [("Ona_Petraitytė.stl", cube_stl(10)), ("ona-petraitytė.stl", cube_stl(11)),
                 ("Jonas Kazlauskas.stl", cube_stl(12))], basis_confirmed="true")
    assert r.status_code == 201, r.text
    return {"people": people, "batch": r.json()}


def test_each_pupil_gets_one_pseudonym_and_the_class_an_end_date(lab: dict) -> None:
    from fabqueue.core.pupils import default_ends_on

    batch = lab["batch"]
    assert [j["pupil"] for j in batch["jobs"]] == ["10B-01", "10B-01", "10B-02"]
    assert batch["basis_confirmed"] is True
    assert batch["ends_on"] == default_ends_on(NOW.date()).isoformat()


def test_basis_and_end_date_are_fields_and_a_bad_date_is_a_4xx(stack: Stack,
                                                                client: TestClient) -> None:
    _, teacher = person(stack, client, "teacher", "kc")
    r = hand_in(client, teacher, [("a.stl", cube_stl(10))], class_name="7a",
                ends_on="2027-01-31")
    assert r.status_code == 201, r.text
    assert r.json()["basis_confirmed"] is False and r.json()["ends_on"] == "2027-01-31"
    page = client.get(f"/classes/{r.json()['id']}", headers=teacher)
    assert page.status_code == 200 and 'id="basis-missing"' in page.text
    assert hand_in(client, teacher, [("a.stl", cube_stl(10))], class_name="7a",
                   ends_on="31.01.2027").status_code == 422


def test_the_class_form_asks_for_the_basis_and_links_the_privacy_page(
        lab: dict, client: TestClient) -> None:
    for locale in ("lt", "ru", "en"):
        page = client.get("/classes", headers={**lab["people"]["teacher"][1],
                                               "Accept-Language": locale})
        assert page.status_code == 200
        assert 'name="basis_confirmed"' in page.text and 'href="/privacy"' in page.text
    confirmed = client.get(f"/classes/{lab['batch']['id']}", headers=lab["people"]["teacher"][1])
    assert 'id="basis-missing"' not in confirmed.text


#: Who reads the names of the 10b pupils (teacher's class at kc).
READS_NAMES = {"teacher", "staff", "admin"}


def _surfaces(lab: dict, stack: Stack) -> dict[str, str]:
    batch = lab["batch"]
    job = batch["jobs"][0]["id"]
    return {"api batch": f"/api/batches/{batch['id']}", "api batches": "/api/batches",
            "api job": f"/api/jobs/{job}", "api jobs": "/api/jobs?limit=200",
            "api job events": f"/api/jobs/{job}/events",
            "api queue kc": "/api/queue?site=kc", "class page": f"/classes/{batch['id']}",
            "class csv": f"/classes/{batch['id']}/export.csv", "classes": "/classes",
            "job page": f"/jobs/{job}", "home": "/", "staff": "/staff",
            "staff queue": "/staff/queue", "staff history": "/staff/history",
            "machines": "/staff/machines", "notifications": "/notifications",
            "export": "/api/me/export"}


def test_names_reach_only_the_class_teacher_site_staff_and_admins(
        lab: dict, stack: Stack, client: TestClient) -> None:
    """Roles × surfaces: a name (or a file name made of it) shows up only for those who may
    read it; they do read it on the class's own surfaces, everyone else the pseudonym."""
    from fabqueue.store.models import Job

    # two of the class's jobs wait in the kc queue, so the board lists them
    with stack.ctx.db.session() as s:
        s.execute(update(Job).where(Job.id.in_([j["id"] for j in lab["batch"]["jobs"][:2]]))
                  .values(status="approved", analysis={"ok": True, "material_g": 3.0,
                                                       "estimated_seconds": 600}))
        s.commit()
    leaks = []
    for role, (_, headers) in lab["people"].items():
        for surface, url in _surfaces(lab, stack).items():
            r = client.get(url, headers=headers)
            body = r.content.decode("utf-8", "replace")
            if r.headers.get("content-type", "").startswith("application/zip"):
                with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
                    body = " ".join(zf.read(n).decode("utf-8", "replace")
                                    for n in zf.namelist())
            assert r.status_code < 500, (role, surface, r.status_code)
            if ("Petraitytė" in body or "Kazlauskas" in body) and role not in READS_NAMES:
                leaks.append((role, surface))
    assert not leaks, f"pupils' names shown to: {leaks}"
    for role in READS_NAMES:
        headers = lab["people"][role][1]
        b = client.get(f"/api/batches/{lab['batch']['id']}", headers=headers).json()
        assert {j["student_name"] for j in b["jobs"]} == {"Ona Petraitytė", "ona petraitytė",
                                                         "Jonas Kazlauskas"}, role
        page = client.get(f"/classes/{lab['batch']['id']}", headers=headers).text
        assert "Ona Petraitytė" in page and "10B-01" in page, role


def test_the_class_csv_names_the_pseudonym_too(lab: dict, client: TestClient) -> None:
    r = client.get(f"/classes/{lab['batch']['id']}/export.csv",
                   headers=lab["people"]["teacher"][1])
    rows = list(csv.reader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert rows[0][-1] == "Pseudonym"
    assert {(row[0], row[-1]) for row in rows[1:]} == {
        ("Ona Petraitytė", "10B-01"), ("ona petraitytė", "10B-01"),
        ("Jonas Kazlauskas", "10B-02")}


def test_live_events_and_notifications_carry_no_names(lab: dict, stack: Stack,
                                                      client: TestClient) -> None:
    """Staff reject a pupil's job: the published event and the owner's notification name
    the job, never the pupil (read from Redis as the events stream does)."""
    import redis

    from fabqueue.events import channel, redis_db

    conn = redis.Redis.from_url(stack.ctx.settings.redis_url)
    bus = conn.pubsub()
    bus.subscribe(channel(redis_db(conn)))
    assert bus.get_message(timeout=5)["type"] == "subscribe"
    from fabqueue.store.models import Job

    job = lab["batch"]["jobs"][2]["id"]
    with stack.ctx.db.session() as s:  # checked, as a worker would have left it
        s.execute(update(Job).where(Job.id == job).values(status="awaiting_approval"))
        s.commit()
    r = client.post(f"/api/jobs/{job}/reject", headers=lab["people"]["staff"][1],
                    json={"reason": "Too thin walls"})
    assert r.status_code == 200, r.text
    messages = []
    while (m := bus.get_message(timeout=2)) is not None:
        if m["type"] == "message":
            messages.append(m["data"].decode())
    bus.close()
    assert any(f'"job": {job}' in m for m in messages), messages
    assert not [m for m in messages if "Kazlauskas" in m or "Petraitytė" in m]
    assert not [t for t in traces(stack, ["Kazlauskas", "Petraitytė"])
                if t[0].startswith("notification")]


def test_the_privacy_page_says_how_long_in_every_language(client: TestClient,
                                                          stack: Stack) -> None:
    for locale in ("lt", "ru", "en"):
        r = client.get("/privacy", headers={"Accept-Language": locale})
        assert r.status_code == 200 and f'<html lang="{locale}">' in r.text
        assert "90" in r.text and "730" in r.text and "30" in r.text
    home = client.get("/login")
    assert 'href="/privacy"' in home.text  # the footer of every page


# ------------------------------------------------------------------ export


def test_export_holds_the_account_jobs_with_history_and_files(stack: Stack,
                                                              client: TestClient) -> None:
    marker = f"export-{secrets.token_hex(4)}"
    name, headers = person(stack, client, "resident")
    r = client.post("/api/jobs", headers=headers, data={"material": "PLA"},
                    files={"file": ("vaza.stl", io.BytesIO(marked_stl(marker)),
                                    "application/octet-stream")})
    assert r.status_code == 201, r.text
    z = client.get("/api/me/export", headers=headers)
    assert z.status_code == 200 and z.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(z.content)) as zf:
        names = zf.namelist()
        account = json.loads(zf.read("account.json"))
        jobs = json.loads(zf.read("jobs.json"))
        notes = json.loads(zf.read("notifications.json"))
        kept = [n for n in names if n.startswith("files/")]
        assert marker.encode() in zf.read(kept[0])
    assert account["name"] == name
    assert [j["id"] for j in jobs] == [r.json()["id"]]
    assert jobs[0]["history"][0]["action"] == "uploaded"
    assert "by_role" in jobs[0]["history"][0] and "who" not in jobs[0]["history"][0]
    assert set(notes) == {"settings", "messages"}
    assert {"account.json", "jobs.json", "batches.json", "notifications.json"} <= set(names)
    account_page = client.get("/account", headers=headers)
    assert 'href="/api/me/export"' in account_page.text


def test_a_teachers_export_lists_their_pupils(lab: dict, client: TestClient) -> None:
    z = client.get("/api/me/export", headers=lab["people"]["teacher"][1])
    with zipfile.ZipFile(io.BytesIO(z.content)) as zf:
        batches = json.loads(zf.read("batches.json"))
    pupils = {p["pseudonym"]: p["name"] for p in batches[0]["pupils"]}
    assert pupils == {"10B-01": "Ona Petraitytė", "10B-02": "Jonas Kazlauskas"}


# ------------------------------------------------------------------ erasure


def test_erasing_oneself_leaves_no_trace_and_the_statistics(stack: Stack,
                                                            client: TestClient) -> None:
    from fabqueue.store.models import Job, User

    marker = f"zebulon-{secrets.token_hex(4)}"
    name = f"Zebulonas Kvikšotas {secrets.token_hex(2)}"
    email = f"zebulonas.{secrets.token_hex(3)}@example.org"
    name, headers = person(stack, client, "resident", name=name)
    assert client.patch(f"/api/users/{client.get('/api/me', headers=headers).json()['id']}",
                        headers=headers, json={"email": email}).status_code == 200
    uploads = []
    for i in range(2):
        r = client.post("/api/jobs", headers=headers, data={"material": "PLA", "note": name},
                        files={"file": (f"{name} {i}.stl",
                                        io.BytesIO(marked_stl(f"{marker}-{i}")),
                                        "application/octet-stream")})
        assert r.status_code == 201, r.text
        uploads.append(r.json()["id"])
    finish(stack, uploads[:1], NOW)  # one printed (statistics), one still being checked
    before = stats(stack)
    assert files_holding(stack, marker.encode())
    assert client.request("DELETE", "/api/me", headers=headers,
                          json={"password": "not it at all"}).status_code == 403
    r = client.request("DELETE", "/api/me", headers=headers,
                       json={"password": stack.passwords[name]})
    assert r.status_code == 200, r.text
    assert client.get("/api/me", headers=headers).status_code == 401  # tokens end at once
    assert client.post("/api/auth/token", data={
        "username": name, "password": stack.passwords[name]}).status_code == 401
    assert traces(stack, [name, email, marker, "Zebulonas", "Kvikšotas"]) == []
    assert files_holding(stack, marker.encode()) == []
    assert stats(stack) == before
    with stack.ctx.db.session() as s:
        jobs = list(s.scalars(select(Job).where(Job.id.in_(uploads))))
        assert {j.status for j in jobs} == {"done", "cancelled"}
        erased = s.get(User, jobs[0].owner_id)
        assert erased.erased_at is not None and erased.role == "resident"


def test_a_running_job_finishes_first_then_its_files_go(stack: Stack,
                                                        client: TestClient) -> None:
    from fabqueue.store.models import Job
    from fabqueue.store.retention import purge

    marker = f"running-{secrets.token_hex(4)}"
    name, headers = person(stack, client, "resident")
    r = client.post("/api/jobs", headers=headers, data={"material": "PLA"},
                    files={"file": ("a.stl", io.BytesIO(marked_stl(marker)),
                                    "application/octet-stream")})
    job = r.json()["id"]
    finish(stack, [job], NOW, status="running")
    assert client.request("DELETE", "/api/me", headers=headers,
                          json={"password": stack.passwords[name]}).status_code == 200
    with stack.ctx.db.session() as s:
        assert s.get(Job, job).status == "running"  # it finishes first
    assert files_holding(stack, marker.encode())
    finish(stack, [job], NOW + timedelta(minutes=30))
    with stack.ctx.db.session() as s:
        purge(s, stack.ctx.files, stack.ctx.settings, NOW + timedelta(hours=1))
    assert files_holding(stack, marker.encode()) == []


def test_admins_erase_accounts_but_not_the_last_admin(stack: Stack,
                                                      client: TestClient) -> None:
    from fabqueue.store.models import User

    victim, victim_headers = person(stack, client, "resident")
    _, resident = person(stack, client, "resident")
    admin = stack.token(client, "admin")
    with stack.ctx.db.session() as s:
        vid = s.scalars(select(User.id).where(User.name == victim)).one()
        aid = s.scalars(select(User.id).where(User.name == "admin")).one()
    assert client.delete(f"/api/users/{vid}", headers=resident).status_code == 403
    assert client.delete(f"/api/users/{vid}", headers=admin).status_code == 200
    assert client.get("/api/me", headers=victim_headers).status_code == 401
    assert client.delete(f"/api/users/{vid}", headers=admin).status_code == 404
    # oneself only with one's password; and never the last admin
    assert client.delete(f"/api/users/{aid}", headers=admin).status_code == 409
    assert client.request("DELETE", "/api/me", headers=admin,
                          json={"password": stack.passwords["admin"]}).status_code == 409
    assert client.get("/api/me", headers=admin).status_code == 200
    assert traces(stack, [victim]) == []


def test_a_teacher_erases_one_pupil_of_their_class(stack: Stack, client: TestClient) -> None:
    marker = f"pupil-{secrets.token_hex(4)}"
    _, teacher = person(stack, client, "teacher", "kc")
    _, other = person(stack, client, "teacher", "kc")
    r = hand_in(client, teacher, [("Rūta Rutkauskė.stl", marked_stl(marker)),
                                  ("Petras Petraitis.stl", cube_stl(13))], class_name="9c")
    batch = r.json()
    assert [j["pupil"] for j in batch["jobs"]] == ["9C-01", "9C-02"]
    url = f"/api/batches/{batch['id']}/pupils/9C-01"
    assert client.delete(url, headers=other).status_code == 403
    assert client.delete(f"/api/batches/{batch['id']}/pupils/9C-77",
                         headers=teacher).status_code == 404
    assert client.delete(url, headers=teacher).status_code == 200
    assert traces(stack, ["Rutkauskė", marker]) == []
    assert files_holding(stack, marker.encode()) == []
    after = client.get(f"/api/batches/{batch['id']}", headers=teacher).json()
    assert [(j["pupil"], j["student_name"]) for j in after["jobs"]] == [
        ("9C-01", None), ("9C-02", "Petras Petraitis")]


def test_the_account_page_erases_with_the_password(stack: Stack, client: TestClient) -> None:
    name = stack.user("resident")
    with TestClient(stack.app) as browser:
        form = browser.get("/login").text
        csrf = form.split('name="csrf_token" value="')[1].split('"')[0]
        r = browser.post("/login", data={"username": name, "password": stack.passwords[name],
                                         "csrf_token": csrf}, follow_redirects=False)
        assert r.status_code == 303, r.text
        page = browser.get("/account")
        token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        wrong = browser.post("/account/erase", data={"password": "nope", "csrf_token": token})
        assert wrong.status_code == 403
        done = browser.post("/account/erase", data={"password": stack.passwords[name],
                                                    "csrf_token": token},
                            follow_redirects=False)
        assert done.status_code == 303 and done.headers["location"] == "/privacy"
        assert browser.get("/account", follow_redirects=False).status_code == 303
    assert traces(stack, [name]) == []


# ------------------------------------------------------------------ retention (faked clock)


def test_purge_removes_files_and_names_on_time_and_keeps_the_statistics(
        stack: Stack, client: TestClient) -> None:
    from fabqueue.store.models import Job
    from fabqueue.store.models_privacy import PurgeRun
    from fabqueue.store.retention import purge

    marker = f"retain-{secrets.token_hex(4)}"
    _, teacher = person(stack, client, "teacher", "kc")
    ends = (NOW + timedelta(days=10)).date()
    r = hand_in(client, teacher, [("Gintarė Gintautienė.stl", marked_stl(marker)),
                                  ("Aistė Aistytė.stl", cube_stl(14))], class_name="11a",
                ends_on=ends.isoformat())
    batch = r.json()
    ids = [j["id"] for j in batch["jobs"]]
    finish(stack, ids, NOW)
    before = stats(stack)

    def run(at: datetime, dry_run: bool = False) -> dict[str, int]:
        with stack.ctx.db.session() as s:
            return purge(s, stack.ctx.files, stack.ctx.settings, at, dry_run=dry_run)

    run(NOW + timedelta(days=39))  # the class ended 29 days ago
    assert traces(stack, ["Gintautienė"])
    named = run(NOW + timedelta(days=41))
    assert named["pupil_names"] >= 2
    assert traces(stack, ["Gintautienė", "Aistytė"]) == []
    run(NOW + timedelta(days=89))
    assert files_holding(stack, marker.encode())
    preview = run(NOW + timedelta(days=91), dry_run=True)
    assert files_holding(stack, marker.encode())  # a dry run removes nothing
    done = run(NOW + timedelta(days=91))
    assert done["job_files"] >= 2 and done["job_files"] == preview["job_files"]
    assert done["files"] >= 1 and done["files"] == preview["files"]
    assert files_holding(stack, marker.encode()) == []
    assert traces(stack, ["Gintautienė", "Aistytė", marker]) == []
    gone = client.get(f"/api/jobs/{ids[0]}/file", headers=teacher)
    assert gone.status_code == 410
    assert client.get(f"/api/jobs/{ids[0]}", headers=teacher).json()["file_name"] == "11A-01.stl"
    assert stats(stack) == before
    with stack.ctx.db.session() as s:
        runs = list(s.scalars(select(PurgeRun).order_by(PurgeRun.id)))
        assert runs and not any(r.dry_run for r in runs)
        assert runs[-1].counts["job_files"] == done["job_files"]
        assert all(j.files_purged_at is not None
                   for j in s.scalars(select(Job).where(Job.id.in_(ids))))
    again = run(NOW + timedelta(days=92))
    assert again["job_files"] == 0 and again["pupil_names"] == 0  # idempotent


def test_names_stay_until_30_days_after_the_class_ended(stack: Stack,
                                                        client: TestClient) -> None:
    from fabqueue.store.retention import purge

    _, teacher = person(stack, client, "teacher", "kc")
    ends = date(2031, 6, 30)
    hand_in(client, teacher, [("Mantas Mantauskas.stl", cube_stl(10))], class_name="6d",
            ends_on=ends.isoformat())
    # noon in Vilnius: the lab's own date decides
    for day, kept in ((date(2031, 7, 30), True), (date(2031, 7, 31), False)):
        at = datetime(day.year, day.month, day.day, 9, 0, tzinfo=UTC)
        with stack.ctx.db.session() as s:
            purge(s, stack.ctx.files, stack.ctx.settings, at)
        assert bool(traces(stack, ["Mantauskas"])) is kept, day


def test_the_purge_is_a_periodic_task_of_serve(stack: Stack) -> None:
    from fabqueue.queue.periodic import run_due

    last: dict[str, datetime] = {}
    at = NOW + timedelta(days=200)
    first = run_due(stack.ctx, at, last)
    assert set(first["privacy:purge"]) == {"job_files", "files", "pupil_names",
                                           "accounts_told", "accounts_erased"}
    assert "privacy:purge" not in run_due(stack.ctx, at + timedelta(hours=23), last)
    assert "privacy:purge" in run_due(stack.ctx, at + timedelta(hours=24), last)


def test_fabqueue_purge_counts_per_kind_and_dry_run_changes_nothing(stack: Stack) -> None:
    from fabqueue.store.models_privacy import PurgeRun

    def runs() -> int:
        with stack.ctx.db.session() as s:
            return len(list(s.scalars(select(PurgeRun))))

    env = {**stack.env}
    count = runs()
    dry = subprocess.run([sys.executable, "-m", "fabqueue", "purge", "--dry-run"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert lines[0].startswith("dry run")
    kinds = dict(line.split("\t") for line in lines[1:])
    assert set(kinds) == {"job_files", "files", "pupil_names", "accounts_told",
                          "accounts_erased"} and all(v.isdigit() for v in kinds.values())
    assert runs() == count
    real = subprocess.run([sys.executable, "-m", "fabqueue", "purge"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert real.returncode == 0 and real.stdout.startswith("removed:"), real.stderr
    assert runs() == count + 1


def test_inactive_accounts_are_told_then_erased(stack: Stack, client: TestClient) -> None:
    """Last in the module: a clock years ahead erases every idle account of this stack."""
    from fabqueue.store.models import Notification, User
    from fabqueue.store.retention import purge

    name = stack.user("resident", name=f"Idle Idlauskas {secrets.token_hex(2)}")
    with stack.ctx.db.session() as s:
        uid = s.scalars(select(User.id).where(User.name == name)).one()

    def run(days: int) -> dict[str, int]:
        with stack.ctx.db.session() as s:
            return purge(s, stack.ctx.files, stack.ctx.settings, NOW + timedelta(days=days))

    run(699)
    with stack.ctx.db.session() as s:
        assert s.get(User, uid).erased_at is None
        assert not list(s.scalars(select(Notification).where(Notification.user_id == uid)))
    told = run(701)
    assert told["accounts_told"] >= 1
    with stack.ctx.db.session() as s:
        kinds = [n.kind for n in s.scalars(select(Notification)
                                           .where(Notification.user_id == uid))]
        assert kinds == ["account_expires"]
    assert run(730)["accounts_erased"] == 0  # told only 29 days ago
    assert run(731)["accounts_erased"] >= 1
    with stack.ctx.db.session() as s:
        admin = s.scalars(select(User).where(User.name == "admin")).one()
        assert s.get(User, uid).erased_at is not None and admin.erased_at is None
    assert traces(stack, [name, "Idlauskas"]) == []
