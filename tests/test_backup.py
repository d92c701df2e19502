"""``fabqueue backup`` while the service runs, ``fabqueue restore`` into an empty folder: the
jobs, their files and thumbnails come back (SQLite here; PostgreSQL on the external run, into
a second database named after the test database with ``_restore``)."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from fabqueue.config import Settings
from fabqueue.store.db import Database
from fabqueue.store.models import Job, JobEvent
from tests.conftest import EXTERNAL, EXTERNAL_DB, Stack
from tests.helpers import analysed, cube_stl, english_client, login

pytestmark = pytest.mark.stack


@pytest.fixture
def client(stack: Stack) -> TestClient:
    return english_client(stack)


def restore_db_url() -> str:
    """A second, empty PostgreSQL database beside the test one."""
    url = make_url(EXTERNAL_DB)
    target = url.set(database=f"{url.database}_restore")
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()
    return target.render_as_string(hide_password=False)


def fabqueue(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fabqueue", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def snapshot(db: Database) -> tuple[list[tuple], int]:
    with db.session() as s:
        jobs = [(j.id, j.file_sha256, j.thumbnail_sha256, j.file_name)
                for j in s.scalars(select(Job).order_by(Job.id))]
        events = len(list(s.scalars(select(JobEvent.id))))
    return jobs, events


def test_backup_while_running_and_restore_into_an_empty_folder(
        stack: Stack, client: TestClient, tmp_path: Path) -> None:
    h = login(stack, client, "resident")
    for size in (11, 12):
        job = analysed(client, h, f"cube-{size}.stl", cube_stl(size))
        assert job["status"] == "awaiting_approval", job
    before_jobs, before_events = snapshot(stack.ctx.db)
    with_thumbs = [j for j in before_jobs if j[2]]
    assert len(with_thumbs) >= 2, "analysed cubes should have thumbnails"

    env = {k: v for k, v in stack.env.items() if k != "FABQUEUE_DATA_DIR"}
    archive = tmp_path / "nightly.tar.gz"
    done = fabqueue("backup", "--to", str(archive), "--data-dir", str(stack.data_dir), env=env)
    assert done.returncode == 0, done.stderr
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "manifest.json" in names
    assert not any(n.startswith("files/tmp/") for n in names)

    target = tmp_path / "restored"
    restore_env = dict(env)
    if EXTERNAL:
        restore_env["DATABASE_URL"] = restore_db_url()
    done = fabqueue("restore", str(archive), "--data-dir", str(target), env=restore_env)
    assert done.returncode == 0, done.stderr

    settings = Settings(data_dir=target, database_url=restore_env.get("DATABASE_URL"))
    restored = Database(settings.sqlalchemy_url)
    try:
        after_jobs, after_events = snapshot(restored)
    finally:
        restored.engine.dispose()
    # the backup may hold jobs newer than our snapshot (other tests share the stack)
    assert set(before_jobs) <= set(after_jobs)
    assert after_events >= before_events
    for _id, file_sha, thumb_sha, _name in after_jobs:
        for sha in (file_sha, thumb_sha):
            if sha:
                src = stack.ctx.files.path(sha)
                copy = target / "files" / src.relative_to(stack.ctx.files.root)
                assert copy.read_bytes() == src.read_bytes()
    assert (target / "secret.key").read_text() == (stack.data_dir / "secret.key").read_text()

    # a second restore onto it is refused unless forced
    again = fabqueue("restore", str(archive), "--data-dir", str(target), env=restore_env)
    assert again.returncode == 2 and "not empty" in again.stderr
    forced = fabqueue("restore", str(archive), "--data-dir", str(target), "--force",
                      env=restore_env)
    assert forced.returncode == 0, forced.stderr


def test_restore_refuses_what_is_not_a_backup(tmp_path: Path, stack: Stack) -> None:
    bogus = tmp_path / "bogus.tar.gz"
    evil = tmp_path / "evil.txt"
    evil.write_text("x")
    with tarfile.open(bogus, "w:gz") as tar:
        tar.add(evil, "../../evil.txt")
    env = {k: v for k, v in stack.env.items() if k not in ("FABQUEUE_DATA_DIR", "DATABASE_URL")}
    done = fabqueue("restore", str(bogus), "--data-dir", str(tmp_path / "d"), env=env)
    assert done.returncode == 2
    assert "unsafe member" in done.stderr
    assert not (tmp_path.parent.parent / "evil.txt").exists()
