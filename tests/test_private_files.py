"""The data folder is its owner's only: folders 0700, the SQLite database and key 0600, for a
new data folder and for one made before (0755/0644) on the next start."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from fabqueue.config import Settings
from fabqueue.store.db import Database
from fabqueue.store.files import FileStore


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def start(data: Path) -> subprocess.CompletedProcess[str]:
    """A real command against the data folder: it opens, migrates and writes the database."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "FABQUEUE_SECRET_KEY")}
    env["FABQUEUE_DATA_DIR"] = str(data)
    return subprocess.run([sys.executable, "-m", "fabqueue", "users", "add", "ada", "--role",
                           "admin", "--password-stdin"], input="a long password 123\n",
                          capture_output=True, text=True, timeout=120, env=env)


def test_a_new_data_folder_is_private(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask: without the fix everything is world-readable
    try:
        data = tmp_path / "data"
        done = start(data)
        assert done.returncode == 0, done.stderr
        settings = Settings(data_dir=data)
        settings.effective_secret()
        FileStore(settings.files_path).put_bytes(b"an upload")
    finally:
        os.umask(old)
    assert mode(data) == 0o700
    assert mode(data / "fabqueue.sqlite3") == 0o600
    for extra in ("fabqueue.sqlite3-wal", "fabqueue.sqlite3-shm"):
        if (data / extra).exists():
            assert mode(data / extra) == 0o600
    assert mode(data / "secret.key") == 0o600
    assert mode(data / "files") == 0o700 and mode(data / "files" / "tmp") == 0o700
    stored = [p for p in (data / "files").rglob("*") if p.is_file()]
    assert stored and all(mode(p) == 0o600 for p in stored)
    assert all(mode(p) == 0o700 for p in (data / "files").rglob("*") if p.is_dir())


def test_an_existing_open_data_folder_is_tightened_on_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert start(data).returncode == 0
    data.chmod(0o755)
    (data / "fabqueue.sqlite3").chmod(0o644)
    (data / "files").mkdir(exist_ok=True)
    (data / "files").chmod(0o755)
    Database(Settings(data_dir=data).sqlalchemy_url)
    FileStore(Settings(data_dir=data).files_path)
    assert mode(data) == 0o700
    assert mode(data / "fabqueue.sqlite3") == 0o600
    assert mode(data / "files") == 0o700
