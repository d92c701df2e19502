"""A whole FabQueue as a lab runs it, for the fault tests: one ``fabqueue serve`` subprocess
(embedded Redis + SQLite, or the external Redis + PostgreSQL), two RQ workers, a simulated
printer and a real OctoPrint Virtual Printer, driven over HTTP like a browser would."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import trimesh

from tests.conftest import EXTERNAL, EXTERNAL_DB, EXTERNAL_REDIS, wait_for
from tests.test_serve import free_port

IN_FLIGHT = ("analyzing", "slicing")
SETTLED_ANALYSIS = ("awaiting_approval", "invalid")


def devices_toml(octoprint_url: str, key_env: str) -> str:
    return f"""
[[site]]
id = "lab"
name = "Fault lab"

[[material]]
id = "PLA"
kind = "filament"
density_g_cm3 = 1.24
price_per_kg = 20.0

[[device]]
id = "op"
site = "lab"
kind = "printer"
driver = "octoprint"
url = "{octoprint_url}"
api_key_env = "{key_env}"
build_volume_mm = [250, 210, 220]
materials = ["PLA"]
profile = "prusa_mk4"

[[device]]
id = "sim"
site = "lab"
kind = "printer"
driver = "simulated"
simulated_speed = 400
build_volume_mm = [250, 210, 220]
materials = ["PLA"]
profile = "prusa_mk4"
"""


def mesh_stl(path: Path, kind: str = "cube", size: float = 12.0) -> Path:
    if kind == "sphere":  # several seconds of slicing (its analysis: ~0.3 s on a quiet machine)
        mesh = trimesh.creation.icosphere(subdivisions=7, radius=size)
    elif kind == "dense-sphere":  # 1.3M faces: ~1 s of analysis, a window to kill it in
        mesh = trimesh.creation.icosphere(subdivisions=8, radius=size)
    else:
        mesh = trimesh.creation.box(extents=(size, size, size))
    mesh.export(path)
    return path


def tree_of(data_dir: Path) -> list[psutil.Process]:
    """Every process on this machine that belongs to FabQueue on ``data_dir``: named in its
    command line (serve, the embedded Redis's socket) or its environment (all children)."""
    found = []
    folder = str(data_dir)
    for proc in psutil.process_iter(["cmdline", "environ", "status"]):
        try:
            if proc.pid == os.getpid() or proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmd = " ".join(proc.info["cmdline"] or ())
            env = proc.info["environ"] or {}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if folder in cmd or env.get("FABQUEUE_DATA_DIR") == folder:
            found.append(proc)
    return found


@dataclass
class Lab:
    root: Path
    octoprint: Any
    data_dir: Path = field(init=False)
    env: dict[str, str] = field(init=False)
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    passwords: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)
    starts: int = 0

    def __post_init__(self) -> None:
        self.data_dir = (self.root / "data").resolve()
        key_env = f"FABQUEUE_DEVICE_FAULT_KEY_{secrets.token_hex(3).upper()}"
        env = {k: v for k, v in os.environ.items()
               if k not in ("FABQUEUE_DATA_DIR", "DATABASE_URL", "REDIS_URL")}
        env[key_env] = self.octoprint.api_key
        env["FABQUEUE_WORKERS"] = "2"
        env["FABQUEUE_WARM_WORKERS"] = "2"  # the scenarios kill a worker while another waits
        if EXTERNAL:
            from tests.conftest import _reset_external

            _reset_external(EXTERNAL_DB, EXTERNAL_REDIS)
            env["DATABASE_URL"] = EXTERNAL_DB
            env["REDIS_URL"] = EXTERNAL_REDIS
        self.env = env
        toml = self.root / "lab.toml"
        toml.write_text(devices_toml(self.octoprint.url, key_env))
        self.cli("devices", "import", str(toml))
        for role in ("resident", "staff"):
            password = secrets.token_urlsafe(12)
            extra = ("--site", "lab") if role == "staff" else ()
            self.cli("users", "add", role, "--role", role, *extra, "--password-stdin",
                     stdin=password + "\n")
            self.passwords[role] = password

    # -- processes ----------------------------------------------------------------------
    def cli(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run([sys.executable, "-m", "fabqueue", *args, "--data-dir",
                               str(self.data_dir)], env=self.env, input=stdin,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def start(self) -> None:
        self.port = free_port()
        self.starts += 1
        self.out = self.root / f"serve-{self.starts}.log"
        with self.out.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "fabqueue", "serve", "--port", str(self.port),
                 "--data-dir", str(self.data_dir)],
                env=self.env, stdout=out, stderr=subprocess.STDOUT)
        wait_for(self.healthy, timeout=90, interval=0.3, what="fabqueue serve to answer")
        wait_for(lambda: len(self.rq_workers()) >= 2
                 and len(self.device_workers()) == self.device_processes,
                 timeout=60, interval=0.3, what="serve's workers")
        self.tokens.clear()

    def healthy(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.output()
        try:
            return httpx.get(f"{self.url}/api/health", timeout=2).json()["status"] == "ok"
        except (httpx.HTTPError, ValueError):
            return False

    def output(self) -> str:
        return self.out.read_text(errors="replace") if self.out.exists() else ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def children(self) -> list[psutil.Process]:
        assert self.proc is not None
        try:
            return psutil.Process(self.proc.pid).children()
        except psutil.NoSuchProcess:
            return []

    def _named(self, word: str) -> list[psutil.Process]:
        out = []
        for p in self.children():
            with contextlib.suppress(psutil.NoSuchProcess):
                if word in p.cmdline():
                    out.append(p)
        return out

    def rq_workers(self) -> list[psutil.Process]:
        return self._named("worker")

    def device_workers(self) -> list[psutil.Process]:
        """The processes driving machines: serve's one device host, or with
        FABQUEUE_MACHINES_IN_ONE_PROCESS=false a device-worker process per machine."""
        return self._named("device-worker") + self._named("device-host")

    @property
    def device_processes(self) -> int:
        return 2 if self.env.get("FABQUEUE_MACHINES_IN_ONE_PROCESS") == "false" else 1

    def driving(self, device_id: str) -> list[psutil.Process]:
        out = []
        for p in self.device_workers():
            with contextlib.suppress(psutil.NoSuchProcess):
                if "device-host" in p.cmdline() or p.cmdline()[-1] == device_id:
                    out.append(p)
        return out

    def device_worker(self, device_id: str) -> psutil.Process:
        """The process that drives ``device_id``: its own, or the host of all machines."""
        found = self.driving(device_id)
        assert len(found) == 1, found
        return found[0]

    def redis_server(self) -> psutil.Process | None:
        for p in self.children():
            with contextlib.suppress(psutil.NoSuchProcess):
                if "redis-server" in p.name():
                    return p
        return None

    def horse_running(self, program: str | None = None) -> tuple[psutil.Process,
                                                                 psutil.Process] | None:
        """(RQ worker, its work-horse) while a horse runs (and runs ``program``)."""
        for worker in self.rq_workers():
            with contextlib.suppress(psutil.NoSuchProcess):
                for horse in worker.children():
                    if program is None:
                        return worker, horse
                    if any(program in " ".join(c.cmdline()) for c in
                           horse.children(recursive=True)):
                        return worker, horse
        return None

    def kill_serve(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for p in tree_of(self.data_dir):
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()

    # -- the API ------------------------------------------------------------------------
    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, headers={"Accept-Language": "en"})

    def auth(self, role: str) -> dict[str, str]:
        if role not in self.tokens:
            with self.http() as h:
                r = h.post("/api/auth/token", data={"username": role,
                                                    "password": self.passwords[role]})
            assert r.status_code == 200, r.text
            self.tokens[role] = {"Authorization": f"Bearer {r.json()['access_token']}"}
        return self.tokens[role]

    def upload(self, path: Path) -> int:
        with self.http() as h, path.open("rb") as f:
            r = h.post("/api/jobs", headers=self.auth("resident"), files={"file": (path.name, f)},
                       data={"material": "PLA", "site": "lab", "quality": "draft"})
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    def approve(self, job_id: int, device: str) -> None:
        with self.http() as h:
            r = h.post(f"/api/jobs/{job_id}/approve", headers=self.auth("staff"),
                       json={"device": device})
        assert r.status_code == 200, r.text

    def job(self, job_id: int) -> dict[str, Any]:
        with self.http() as h:
            r = h.get(f"/api/jobs/{job_id}", headers=self.auth("staff"))
        assert r.status_code == 200, r.text
        return r.json()

    def device(self, device_id: str) -> dict[str, Any]:
        with self.http() as h:
            r = h.get(f"/api/devices/{device_id}", headers=self.auth("staff"))
        assert r.status_code == 200, r.text
        return r.json()

    def events(self, job_id: int) -> list[dict[str, Any]]:
        with self.http() as h:
            r = h.get(f"/api/jobs/{job_id}/events", headers=self.auth("staff"))
        assert r.status_code == 200, r.text
        return r.json()

    def wait_status(self, job_id: int, wanted: tuple[str, ...], timeout: float = 60.0
                    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            try:
                job = self.job(job_id)
            except httpx.HTTPError:
                return None
            return job if job["status"] in wanted else None

        return wait_for(check, timeout=timeout, interval=0.3,
                        what=f"job {job_id} to become one of {wanted}")

    # -- the checks after every fault ----------------------------------------------------
    def nothing_stuck(self, job_ids: list[int], within_s: float = 30.0) -> dict[int, str]:
        """Every job still there, and none left analyzing/slicing after ``within_s``."""
        deadline = time.monotonic() + within_s
        while True:
            statuses = {j: self.job(j)["status"] for j in job_ids}
            stuck = {j: s for j, s in statuses.items() if s in IN_FLIGHT}
            if not stuck:
                return statuses
            assert time.monotonic() < deadline, f"stuck after {within_s} s: {stuck}"
            time.sleep(0.5)

    def new_upload_is_analysed(self, tmp: Path, timeout: float = 30.0) -> float:
        started = time.monotonic()
        job_id = self.upload(mesh_stl(tmp / f"probe-{secrets.token_hex(3)}.stl", size=9))
        job = self.wait_status(job_id, SETTLED_ANALYSIS, timeout=timeout)
        assert job["status"] == "awaiting_approval", job
        return time.monotonic() - started

    def prints_per_job(self) -> dict[int, int]:
        """Prints OctoPrint itself counts for each FabQueue job file (finished ones)."""
        from fabqueue.drivers.octoprint import job_id_from_name
        from tests.octoprint_fixtures import octoprint_instance_module

        status, body = octoprint_instance_module.request(
            f"{self.octoprint.url}/api/files/local?recursive=true", self.octoprint.api_key)
        assert status == 200, body
        counts: dict[int, int] = {}

        def walk(entries: list[dict[str, Any]]) -> None:
            for e in entries:
                if e.get("type") == "folder":
                    walk(e.get("children") or [])
                    continue
                job_id = job_id_from_name(e.get("name", ""))
                if job_id is not None:
                    prints = e.get("prints") or {}
                    n = int(prints.get("success", 0)) + int(prints.get("failure", 0))
                    counts[job_id] = counts.get(job_id, 0) + n
        walk(body.get("files") or [])
        return counts

    def orphans(self, timeout: float = 10.0) -> list[str]:
        """Processes of this data folder that no live ``serve`` owns (after ``timeout``)."""
        def strays() -> list[psutil.Process]:
            mine: set[int] = set()
            if self.proc is not None and self.proc.poll() is None:
                root = psutil.Process(self.proc.pid)
                mine = {root.pid, *(p.pid for p in root.children(recursive=True))}
            return [p for p in tree_of(self.data_dir) if p.pid not in mine]

        with contextlib.suppress(AssertionError):
            wait_for(lambda: not strays(), timeout=timeout, interval=0.3, what="no orphans")
        return [f"{p.pid} {' '.join(p.cmdline())[:120]}" for p in strays()
                if p.is_running()]
