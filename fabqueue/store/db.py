"""Engine, sessions and migrations (Alembic, applied at start)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from fabqueue.store.private import private_file, tighten_existing

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
#: The newest migration (tests/store/test_migrations.py checks it against Alembic's head). A
#: database already there is not handed to Alembic: importing it costs every worker process
#: ~10 MB that a forked work-horse carries too (bench/RESULTS.md, "Upload to verdict").
SCHEMA_HEAD = "0004e"


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (None for in-memory or other databases)."""
    if not url.startswith("sqlite"):
        return None
    database = make_url(url).database
    return Path(database) if database and database != ":memory:" else None


def make_engine(url: str, max_overflow: int | None = None) -> Engine:
    """``max_overflow``: connections beyond the pool's (-1: no limit; a device host's
    machines each hold one at times, and none may wait on another's)."""
    pool = {} if max_overflow is None else {"max_overflow": max_overflow}
    if url.startswith("sqlite"):
        path = sqlite_file(url)
        if path is not None and path.parent.is_dir():
            # Argon2 hashes and e-mail addresses: 0600 before SQLite first writes to it
            # (its -wal and -shm files take the database file's mode).
            private_file(path)
            tighten_existing(Path(f"{path}-wal"), Path(f"{path}-shm"))
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               **(pool if path is not None else {}))  # :memory: has no pool

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            # WAL lets the web read while a worker writes; foreign keys are off by default.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10,
                         max_overflow=20 if max_overflow is None else max_overflow)


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str) -> None:
    """Create or upgrade the schema to the newest migration."""
    from alembic import command

    command.upgrade(alembic_config(url), "head")


_MIGRATE_CHILD = ("import logging, sys\n"
                  "logging.basicConfig(level=logging.INFO,\n"
                  "                    format='%(asctime)s %(levelname)s %(name)s: %(message)s')\n"
                  "from fabqueue.store.db import migrate\n"
                  "migrate(sys.stdin.read())\n")


def migrate_in_child(url: str) -> None:
    """:func:`migrate` in a child process (the URL on its stdin, not its command line: it
    may hold a password); its log lines go where ours go."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _MIGRATE_CHILD], input=url, text=True,
                          capture_output=True, check=False)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"the database migration failed ({done.returncode}): "
                           f"{done.stderr.strip()[-2000:]}")


def at_head(engine: Engine) -> bool:
    """Whether the database's schema is already the newest (read without Alembic)."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    except SQLAlchemyError:  # no schema yet: Alembic creates it
        return False
    return [r[0] for r in rows] == [SCHEMA_HEAD]


class Database:
    def __init__(self, url: str, max_overflow: int | None = None) -> None:
        self.url = url
        self.engine = make_engine(url, max_overflow)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    def migrate(self, *, in_child: bool = False) -> None:
        """Upgrade the schema, then add the built-in materials a new database lacks.

        ``in_child``: run Alembic in a short-lived process of its own. A long-running
        process (``serve``) would otherwise keep Alembic's modules and the migration's
        leftovers, ~16 MB, for as long as it runs (bench/RESULTS.md, "Many machines per
        process")."""
        from fabqueue.store.inventory import seed_materials

        if not at_head(self.engine):
            if in_child:
                migrate_in_child(self.url)
            else:
                migrate(self.url)
        with self.session() as session:
            seed_materials(session)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessionmaker() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
