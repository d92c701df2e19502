"""A backup holds ``secret.key`` and the database: the archive is the service user's only,
the database password never reaches a command line, and ``restore --force`` does not pull
the floor from under a running ``serve``. SQLite on the embedded pass; PostgreSQL (with a
password in ``DATABASE_URL``, which the trust-auth test server ignores) on the external one,
where the real ``pg_dump``/``pg_restore`` run behind a wrapper that records what they got."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from fabqueue.queue.instance import InstanceLock
from fabqueue.store.backup import _libpq
from tests.conftest import EXTERNAL, own_database

pytestmark = pytest.mark.stack

PASSWORD = "pw-must-not-be-on-argv"

WRAPPER = """#!/bin/sh
# records the argv and whether a password came through the environment, then runs the tool
{{ printf '%s\\n' "$0 $*"; printf 'PGPASSWORD=%s\\n' "${{PGPASSWORD:-}}"; }} >> {log}
exec {real} "$@"
"""


def _env(tmp_path: Path, key: str) -> tuple[dict[str, str], Path]:
    """The CLI's environment: its own database (with a password on the external pass) and
    pg_dump/pg_restore wrapped so that the test reads what they were given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FABQUEUE_")
           and k not in ("DATABASE_URL", "REDIS_URL", "PGPASSWORD")}
    url = own_database(key).get("DATABASE_URL")
    if url:
        env["DATABASE_URL"] = make_url(url).set(password=PASSWORD).render_as_string(
            hide_password=False)
    wrap = tmp_path / "bin"
    wrap.mkdir(exist_ok=True)
    log = tmp_path / "pg-calls.log"
    for tool in ("pg_dump", "pg_restore"):
        real = f"/usr/bin/{tool}"
        (wrap / tool).write_text(WRAPPER.format(log=log, real=real))
        (wrap / tool).chmod(0o755)
    env["PATH"] = f"{wrap}{os.pathsep}{env.get('PATH', '')}"
    return env, log


def fabqueue(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # a common umask: without care the archive would come out 0644
    return subprocess.run([sys.executable, "-m", "fabqueue", *args], env=env,
                          capture_output=True, text=True, timeout=300,
                          preexec_fn=lambda: os.umask(0o022))


def test_archive_is_private_and_the_password_stays_off_the_command_line(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    env, log = _env(tmp_path, str(data))
    assert fabqueue("db", "migrate", "--data-dir", str(data), env=env).returncode == 0
    archive = tmp_path / "out" / "nightly.tar.gz"
    done = fabqueue("backup", "--to", str(archive), "--data-dir", str(data), env=env)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    with tarfile.open(archive) as tar:
        assert any(n.startswith("db/") for n in tar.getnames())

    if EXTERNAL:
        calls = log.read_text()
        assert "pg_dump" in calls, calls
        assert PASSWORD not in calls.replace(f"PGPASSWORD={PASSWORD}", ""), calls
        assert f"PGPASSWORD={PASSWORD}" in calls, calls
        target = tmp_path / "restored"
        renv, rlog = _env(tmp_path, str(target))
        done = fabqueue("restore", str(archive), "--data-dir", str(target), env=renv)
        assert done.returncode == 0, done.stderr
        calls = rlog.read_text()
        assert "pg_restore" in calls, calls
        assert PASSWORD not in calls.replace(f"PGPASSWORD={PASSWORD}", ""), calls


def test_libpq_call_carries_the_password_in_the_environment() -> None:
    conninfo, env = _libpq(f"postgresql+psycopg://fq:{PASSWORD}@db.example:5432/fabqueue")
    assert PASSWORD not in conninfo
    assert conninfo.startswith("postgresql://fq@db.example:5432/fabqueue")
    assert env["PGPASSWORD"] == PASSWORD


def test_forced_restore_refuses_while_serve_holds_the_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env, _log = _env(tmp_path, str(data))
    assert fabqueue("db", "migrate", "--data-dir", str(data), env=env).returncode == 0
    archive = tmp_path / "b.tar.gz"
    assert fabqueue("backup", "--to", str(archive), "--data-dir", str(data),
                    env=env).returncode == 0

    lock = InstanceLock(data)  # what serve takes while it runs
    lock.acquire()
    try:
        done = fabqueue("restore", str(archive), "--data-dir", str(data), "--force", env=env)
    finally:
        lock.release()
    assert done.returncode == 2, done.stdout + done.stderr
    assert "serve runs" in done.stderr and "stop it" in done.stderr

    again = fabqueue("restore", str(archive), "--data-dir", str(data), "--force", env=env)
    assert again.returncode == 0, again.stderr
