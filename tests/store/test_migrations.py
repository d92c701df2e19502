"""Upgrades with data: a database built at every earlier revision, filled with the rows a lab
has (users of each role, sites, materials, printers and lasers, batches, jobs in every
status with their history and notifications), upgraded to the newest revision, keeps them
all; and the models agree with the migrations (autogenerate finds no difference).

The revisions come from walking the script directory, so ones added later are tested with
no edit here. The rows are written with Core against the tables as they are AT that revision
(reflected, no ORM models: those describe the newest schema); a NOT NULL column a later
revision added without a default gets a filler value, so its own upgrade is what is tested.
SQLite by default; PostgreSQL with FABQUEUE_TEST_EXTERNAL=1 (``-m stack``), in a database of
its own beside the test database (``<name>_migrations``), so the service stack of the same
session is left alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData, create_engine, func, select, text
from sqlalchemy.engine import make_url

from fabqueue.core.jobs import JobStatus
from fabqueue.store.db import alembic_config, make_engine
from fabqueue.store.models import Base, Device, Job, JobEvent
from tests.conftest import EXTERNAL, EXTERNAL_DB

pytestmark = pytest.mark.stack

NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def revisions() -> list[str]:
    """Every revision, oldest first (walking the script directory)."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [r.revision for r in reversed(list(script.walk_revisions("base", "heads")))]


def earlier_revisions() -> list[str]:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    heads = set(script.get_heads())
    return [r for r in revisions() if r not in heads]


@pytest.fixture
def db_url(tmp_path: Path) -> Iterator[str]:
    if not EXTERNAL:
        yield f"sqlite:///{tmp_path / 'mig.sqlite3'}"
        return
    url = make_url(EXTERNAL_DB)
    name = f"{url.database}_migrations"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}):
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    target = url.set(database=name).render_as_string(hide_password=False)
    engine = create_engine(target)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    yield target


def _filler(column: Any) -> Any:
    """A value for a NOT NULL column without a default that a later revision added."""
    kind = column["type"].__class__.__name__.upper()
    if "INT" in kind:
        return 0
    if "BOOL" in kind:
        return False
    if "FLOAT" in kind or "NUMERIC" in kind or "REAL" in kind:
        return 0.0
    if "JSON" in kind:
        return {}
    if "DATE" in kind or "TIME" in kind:
        return NOW
    return ""


def lab_rows() -> dict[str, list[dict[str, Any]]]:
    """What a lab's database holds after a few weeks, as of revision 0001's columns."""
    sites = [{"id": "kc", "name": "Kaunas", "colour_map": {"#ff0000": "cut"}, "created_at": NOW},
             {"id": "vln", "name": "Vilnius", "colour_map": None, "created_at": NOW}]
    users = [{"id": i + 1, "name": name, "password_hash": "argon2$x", "role": role,
              "site_id": site, "email": f"{name}@lab.lt", "locale": loc, "disabled": False,
              "quota_g_month": quota, "created_at": NOW}
             for i, (name, role, site, loc, quota) in enumerate([
                 ("ona", "resident", None, "lt", 500.0), ("ivan", "resident", None, "ru", None),
                 ("mokytoja", "teacher", "kc", "lt", None), ("staff1", "staff", "kc", "en",
                                                             None),
                 ("admin", "admin", None, None, None)])]
    materials = [
        {"id": "PLA", "kind": "filament", "name": "PLA", "density_g_cm3": 1.24,
         "price_per_kg": 20.0, "price_per_sheet": None, "sheet_w_mm": None, "sheet_h_mm": None,
         "thickness_mm": None, "laser_material": None},
        {"id": "ply3", "kind": "sheet", "name": "Plywood 3 mm", "density_g_cm3": None,
         "price_per_kg": None, "price_per_sheet": 4.5, "sheet_w_mm": 600.0, "sheet_h_mm": 400.0,
         "thickness_mm": 3.0, "laser_material": "plywood_3mm"}]
    base_dev = {"materials": ["PLA"], "profile": "prusa_mk4", "printer_class": None,
                "settings": {}, "enabled": True, "state_reason": None, "current_job_id": None,
                "progress": None, "time_left_s": None, "temperatures": {}, "seen_at": NOW,
                "loaded_material": "PLA", "confirmation": None}
    devices = [
        {**base_dev, "id": "mk4-1", "site_id": "kc", "name": "MK4 #1", "kind": "printer",
         "driver": "octoprint", "size_mm": [250, 210, 220],
         "connection": {"url": "http://10.0.0.5", "api_key_env": "MK4_KEY"}, "state": "busy",
         "current_job_id": 8, "progress": 42.5,
         "temperatures": {"tool0": {"actual": 214.8, "target": 215}}},
        {**base_dev, "id": "sim-1", "site_id": "vln", "name": "Sim", "kind": "printer",
         "driver": "simulated", "size_mm": [180, 180, 180], "connection": {},
         "state": "needs_bed_clear", "current_job_id": 9},
        {**base_dev, "id": "laser-1", "site_id": "kc", "name": "K40", "kind": "laser",
         "driver": "grbl", "size_mm": [600, 400], "materials": ["ply3"], "profile": None,
         "connection": {"port": "/dev/ttyUSB0", "baud": 115200},
         "settings": {"max_power_w": 40, "homing": True}, "state": "awaiting_operator",
         "loaded_material": None,
         "confirmation": {"job": 14, "expires": 1.9e9, "by": 4}}]
    batches = [{"id": 1, "teacher_id": 3, "site_id": "kc", "class_name": "8b technologijos",
                "material_id": "PLA", "budget_g": 300.0, "created_at": NOW}]
    jobs, events, notes = [], [], []
    for i, status in enumerate(JobStatus, start=1):
        laser = status in (JobStatus.AWAITING_APPROVAL, JobStatus.DONE) and i % 2 == 0
        done = status in (JobStatus.DONE, JobStatus.FAILED, JobStatus.INTERRUPTED,
                          JobStatus.CANCELLED)
        jobs.append({
            "id": i, "kind": "laser" if laser else "print", "status": status.value,
            "status_reason": ('fq:{"code":"grbl_alarm","text":"Alarm {code}","params":'
                              '{"code":2}}' if status == JobStatus.FAILED else None),
            "owner_id": 1 + i % 2, "site_id": "kc" if i % 3 else None,
            "material_id": "ply3" if laser else "PLA", "quality": "normal",
            "copies": 1 + i % 3, "note": "ačiū, спасибо" if i == 3 else None,
            "file_sha256": f"{i:064x}", "file_name": f"detalė-{i}.stl",
            "file_format": "svg" if laser else "stl", "size_bytes": 1000 * i,
            "analysis": None if status == JobStatus.ANALYZING else {
                "ok": status != JobStatus.INVALID, "fits": ["mk4-1"], "bbox_mm": [20, 20, 5],
                "estimated_seconds": 600 + i},
            "analysis_attempts": 1, "thumbnail_sha256": f"{i + 100:064x}",
            "program_sha256": f"{i + 200:064x}" if status in (
                JobStatus.READY, JobStatus.RUNNING, JobStatus.DONE) else None,
            "slice_result": {"filament_g": 4.2, "estimated_seconds": 540} if status in (
                JobStatus.READY, JobStatus.RUNNING, JobStatus.DONE) else None,
            "priority": 10 if i == 7 else 0, "pinned_device_id": "mk4-1" if i == 8 else None,
            "device_id": "mk4-1" if status == JobStatus.RUNNING or done else None,
            "batch_id": 1 if i % 4 == 0 else None,
            "student_name": "Jonas" if i % 4 == 0 else None,
            "created_at": NOW + timedelta(minutes=i), "updated_at": NOW + timedelta(hours=i),
            "started_at": NOW if status == JobStatus.RUNNING or done else None,
            "finished_at": NOW + timedelta(hours=1) if done else None,
            "actual_seconds": 3600.0 if done else None})
        events.append({"id": 2 * i, "job_id": i, "at": NOW, "actor_id": None, "action": "uploaded",
                       "from_status": None, "to_status": "analyzing", "reason": None,
                       "data": None})
        if status != JobStatus.ANALYZING:
            events.append({"id": 2 * i + 1, "job_id": i, "at": NOW + timedelta(minutes=5),
                           "actor_id": 4,
                           "action": status.value, "from_status": "analyzing",
                           "to_status": status.value, "reason": "ok",
                           "data": {"device": "mk4-1"}})
        notes.append({"id": i, "user_id": 1 + i % 2, "job_id": i, "kind": f"job_{status.value}",
                      "text": f"job_{status.value}", "params": {"reason": ""},
                      "read": i % 2 == 0, "at": NOW})
    return {"sites": sites, "users": users, "materials": materials, "devices": devices,
            "batches": batches, "jobs": jobs, "job_events": events, "notifications": notes}


def fill(engine: Engine, rows: dict[str, list[dict[str, Any]]]) -> None:
    meta = MetaData()
    meta.reflect(engine)
    from sqlalchemy import inspect

    insp = inspect(engine)
    with engine.begin() as conn:
        for name, table_rows in rows.items():
            table = meta.tables[name]
            needed = [c for c in insp.get_columns(name) if not c["nullable"]
                      and c.get("default") is None and c.get("autoincrement") is not True
                      and not c.get("primary_key")]
            extra = {c["name"]: _filler(c) for c in needed
                     if not any(c["name"] in r for r in table_rows)}
            conn.execute(table.insert(), [{**extra, **r} for r in table_rows])
        if engine.dialect.name == "postgresql":  # ids given explicitly: move the sequences
            for name in ("users", "batches", "jobs", "job_events", "notifications"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                                  f"(SELECT MAX(id) FROM {name}))"))


def _plain(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        return value.replace(tzinfo=None) if value.tzinfo is None else value.astimezone(
            UTC).replace(tzinfo=None)
    return value


def check(engine: Engine, rows: dict[str, list[dict[str, Any]]]) -> None:
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        for name, table_rows in rows.items():
            table = meta.tables[name]
            got = {r.id: dict(r._mapping) for r in conn.execute(select(table))}
            assert sorted(got) == sorted(r["id"] for r in table_rows), name
            for before in table_rows:
                after = got[before["id"]]
                for col, value in before.items():
                    assert _plain(after[col]) == _plain(value), (name, col, before, after)


def _upgrade(url: str, to: str) -> None:
    command.upgrade(alembic_config(url), to)


@pytest.mark.parametrize("start", earlier_revisions())
def test_upgrade_with_data_keeps_every_row(db_url: str, start: str) -> None:
    _upgrade(db_url, start)
    engine = make_engine(db_url)
    rows = lab_rows()
    try:
        fill(engine, rows)
        _upgrade(db_url, "heads")
        check(engine, rows)
        # the newest models read every row, and a device's new lease starts free
        from sqlalchemy.orm import Session

        with Session(engine) as s:
            statuses = set(s.scalars(select(Job.status)))
            assert statuses == {st.value for st in JobStatus}
            assert s.scalar(select(func.count()).select_from(JobEvent)) == len(
                rows["job_events"])
            for d in s.scalars(select(Device)):
                assert d.fencing_token == 0 and d.lease_owner is None
                assert d.lease_expires_at is None
            # and the upgraded database takes new rows (sequences/autoincrement intact)
            s.add(JobEvent(job_id=1, action="note", from_status="analyzing",
                           to_status="analyzing"))
            s.commit()
    finally:
        engine.dispose()


def test_every_revision_is_walked() -> None:
    revs = revisions()
    assert revs[:2] == ["0001", "0002"] and "0003d" in revs
    assert set(earlier_revisions()) >= {"0001", "0002"}


def test_models_and_migrations_agree(db_url: str) -> None:
    _upgrade(db_url, "heads")
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert diff == [], diff


def test_schema_head_is_alembics_head_and_a_database_there_skips_alembic(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers skip Alembic for a database at SCHEMA_HEAD: a stale constant would leave a
    database unmigrated, so it must name Alembic's one head."""
    from fabqueue.store import db as store_db

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert script.get_heads() == [store_db.SCHEMA_HEAD]
    database = store_db.Database(f"sqlite:///{tmp_path / 'head.sqlite3'}")
    assert not store_db.at_head(database.engine)
    database.migrate()
    assert store_db.at_head(database.engine)
    called: list[str] = []
    monkeypatch.setattr(store_db, "migrate", lambda url: called.append(url))
    database.migrate()
    assert called == []


def test_serve_migrates_in_a_child_and_keeps_no_alembic(tmp_path: Path) -> None:
    """``serve`` runs for months: its migration runs in a process of its own, so Alembic's
    modules never stay in it; a migration that fails says why."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'served.sqlite3'}"
    code = ("import sys\n"
            "from fabqueue.store.db import Database, at_head\n"
            "d = Database(sys.argv[1])\n"
            "d.migrate(in_child=True)\n"
            "print(at_head(d.engine), 'alembic' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True,
                          check=True)
    assert done.stdout.split() == ["True", "False"], done.stderr
    assert "Running upgrade" in done.stderr  # Alembic's own lines reach our log

    from fabqueue.store.db import migrate_in_child

    with pytest.raises(RuntimeError, match="migration failed"):
        migrate_in_child("nosuchdialect://nowhere")
