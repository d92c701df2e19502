"""One-file backups of a running FabQueue, and restoring them into an empty data folder.

The archive (tar.gz) holds ``manifest.json``, the database (``db/fabqueue.sqlite3`` made with
SQLite's online backup API, or ``db/fabqueue.pgdump`` from ``pg_dump --format=custom``), the
file store (``files/``) and the signing key. The database is copied first and the files after:
stored files are named by their hash and never change, so every file a backed-up row names is
already there when the files are copied (later uploads add files no row names: harmless).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from fabqueue.config import Settings

FORMAT = 1
SQLITE_NAME = "fabqueue.sqlite3"
PGDUMP_NAME = "fabqueue.pgdump"
#: what else in the data folder belongs in a backup (the rest is runtime state)
EXTRA_FILES = ("secret.key",)


class BackupError(Exception):
    pass


def default_name(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"fabqueue-backup-{now:%Y%m%d-%H%M%S}.tar.gz"


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A plain libpq URL for pg_dump/pg_restore (without SQLAlchemy's driver name) and the
    environment to run them in: the password goes in ``PGPASSWORD``, never on the command
    line, where every user of the host reads it in ``/proc/*/cmdline``."""
    u = make_url(url)
    env = dict(os.environ)
    if u.password is not None:
        env["PGPASSWORD"] = str(u.password)
    # URL.set ignores None, so the password is dropped by the namedtuple's _replace
    bare = u.set(drivername="postgresql")._replace(password=None)
    return bare.render_as_string(hide_password=False), env


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database:
        raise BackupError("the SQLite URL names no file")
    return Path(database)


def _run(argv: list[str], what: str, env: dict[str, str]) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=3600, env=env)
    except FileNotFoundError:
        raise BackupError(f"{argv[0]} is not installed (Debian: apt-get install "
                          "postgresql-client)") from None
    if done.returncode != 0:
        raise BackupError(f"{what} failed: {done.stderr.strip()[-2000:]}")


def _revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()


def backup(settings: Settings, dest: Path) -> dict[str, Any]:
    """Write the archive to ``dest`` (atomically: a half-written backup never has its name)."""
    url = settings.sqlalchemy_url
    dest = dest.expanduser().resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "format": FORMAT, "created": datetime.now(UTC).isoformat(),
        "database": "sqlite" if _is_sqlite(url) else "postgresql",
        "revision": _revision(url),
    }
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".fabqueue-backup-") as tmp:
        work = Path(tmp)
        if _is_sqlite(url):
            db_file = work / SQLITE_NAME
            src = sqlite3.connect(_sqlite_path(url))
            out = sqlite3.connect(db_file)
            try:
                with out:
                    src.backup(out)  # a consistent copy while others write
            finally:
                out.close()
                src.close()
        else:
            db_file = work / PGDUMP_NAME
            conninfo, env = _libpq(url)
            _run(["pg_dump", "--format=custom", "--no-owner", "--no-privileges",
                  f"--file={db_file}", conninfo], "pg_dump", env)
        files = settings.files_path
        manifest["files"] = sum(1 for p in files.rglob("*") if p.is_file()
                                and "tmp" not in p.relative_to(files).parts[:1])
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2))
        partial = work / "archive.tar.gz"
        # the archive holds secret.key (whoever reads it can sign admin tokens): created
        # 0600 from its first byte, not chmod-ed afterwards
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            tar.add(work / "manifest.json", "manifest.json")
            tar.add(db_file, f"db/{db_file.name}")
            if files.is_dir():
                tar.add(files, "files", filter=_skip_tmp)
            for name in EXTRA_FILES:
                if (settings.data_path / name).exists():
                    tar.add(settings.data_path / name, name)
        os.replace(partial, dest)
    return manifest


def _skip_tmp(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if info.name == "files/tmp" or info.name.startswith("files/tmp/") else info


def _data_dir_empty(data: Path) -> bool:
    return not data.exists() or not any(data.iterdir())


def _pg_empty(url: str) -> bool:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return not inspect(conn).get_table_names()
    finally:
        engine.dispose()


def _safe_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    members = []
    for m in tar.getmembers():
        parts = Path(m.name).parts
        if m.name.startswith("/") or ".." in parts or not (m.isfile() or m.isdir()):
            raise BackupError(f"refusing the archive: unsafe member {m.name!r}")
        members.append(m)
    return members


def restore(settings: Settings, archive: Path, *, force: bool = False) -> dict[str, Any]:
    """Bring an archive back into an empty data folder (and empty PostgreSQL database)."""
    url = settings.sqlalchemy_url
    data = settings.data_dir.expanduser().resolve()
    try:
        tar = tarfile.open(archive, "r:gz")  # noqa: SIM115 (closed by the with below)
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"can't read {archive}: {exc}") from None
    with tar, tempfile.TemporaryDirectory(prefix="fabqueue-restore-") as tmp:
        work = Path(tmp)
        members = _safe_members(tar)
        tar.extractall(work, members=members, filter="data")
        try:
            manifest = json.loads((work / "manifest.json").read_text())
        except (OSError, ValueError):
            raise BackupError(f"{archive} is not a FabQueue backup (no manifest)") from None
        if manifest.get("format") != FORMAT:
            raise BackupError(f"unknown backup format {manifest.get('format')!r}")
        kind = "sqlite" if _is_sqlite(url) else "postgresql"
        if manifest.get("database") != kind:
            raise BackupError(f"the backup holds a {manifest.get('database')} database; this "
                              f"FabQueue is set up for {kind}")
        if not force and not _data_dir_empty(data):
            raise BackupError(f"{data} is not empty: restore into an empty folder, or pass "
                              "--force to replace what is there")
        if kind == "postgresql" and not force and not _pg_empty(url):
            raise BackupError("the database already has tables: restore into an empty "
                              "database, or pass --force to replace them")
        data.mkdir(parents=True, exist_ok=True)
        if kind == "sqlite":
            target = _sqlite_path(url)
            target.parent.mkdir(parents=True, exist_ok=True)
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    Path(f"{target}{suffix}").unlink()
            shutil.copyfile(work / "db" / SQLITE_NAME, target)
        else:
            conninfo, env = _libpq(url)
            argv = ["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error",
                    f"--dbname={conninfo}"]
            if force:
                argv += ["--clean", "--if-exists"]
            _run([*argv, str(work / "db" / PGDUMP_NAME)], "pg_restore", env)
        files = work / "files"
        if files.is_dir():
            shutil.copytree(files, settings.data_dir.expanduser().resolve() / "files",
                            dirs_exist_ok=True)
        for name in EXTRA_FILES:
            if (work / name).exists():
                shutil.copyfile(work / name, data / name)
                (data / name).chmod(0o600)
    return manifest
