"""Dispatch latency: from "bed cleared" to OctoPrint printing a 10 MB G-code file.

    .venv/bin/python bench/bench_dispatch.py [--repeats 5] [--size-mb 10] [--write]

A real stack (embedded Redis, SQLite, the app in-process, a real ``fabqueue worker``), one
OctoPrint 1.11 Virtual Printer and one ``fabqueue device-worker`` process at its production
poll interval. Each FabQueue run: the printer waits in ``needs_bed_clear`` with a 10 MB
staff G-code job ready in its pool; the clock starts at ``POST /api/devices/{id}/bed-cleared``
and stops when OctoPrint's ``GET /api/job`` says ``Printing``. Reference, interleaved in the
same run: one plain ``POST /api/files/local`` of the same file with ``select`` and ``print``,
timed the same way; and FabQueue's OctoPrint driver alone (its ``start``, call by call).

The shared pieces (``Farm``, ``gcode_program``) are used by bench_throughput.py and
bench_estimate_actual.py too. Every process started here is stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # tests/ and fabqueue/ when run as ``python bench/…``

from sqlalchemy import select  # noqa: E402

from fabqueue.queue import control  # noqa: E402
from fabqueue.store.models import Job, JobEvent  # noqa: E402
from tests.conftest import Stack, build_stack, wait_for  # noqa: E402
from tests.octoprint_fixtures import OctoPrintInstance, octoprint_instance_module  # noqa: E402
from tests.queue.helpers import new_site  # noqa: E402

RESULTS = REPO / "bench" / "RESULTS.md"
SECTION = "## Dispatch latency"
GOAL = 1.3
POLL_S = 0.01  # how often we ask OctoPrint for its state while timing
# ``run_device_worker`` with another poll interval (it has no option for one).
WORKER_AT_POLL = """
import signal, sys, threading
from fabqueue.queue.context import get_context
from fabqueue.queue.device_worker import DeviceWorker
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
ctx = get_context()
DeviceWorker(ctx, sys.argv[1], poll_s=float(sys.argv[2])).run(stop)
"""
HISTORY = (
    "Before b6a9e2a (bed-cleared wakes the device worker), at 8df5fb4, the same run gave "
    "FabQueue 0.51 s median (0.27–0.84), **5.48×** the reference (0.09 s): 0.39 s of it "
    "bed-cleared → claimed, i.e. waiting for the worker's next 1 s poll; the bench pushing "
    "the wake-up command itself then gave 0.12 s, 1.32×.")
TERMINAL = ("done", "failed", "cancelled", "interrupted", "rejected")


# -- G-code ------------------------------------------------------------------------------------

HEADER = ["; made by FabQueue's benchmarks", "G21", "G90", "M83", "M140 S60", "M104 S200",
          "M190 S60", "M109 S200", "G28", "G1 Z0.3 F600"]
FOOTER = ["M104 S0", "M140 S0", "G1 Z10 F600", "M84"]


def gcode_program(moves: int) -> str:
    """A valid print program: heat-up header, ``moves`` short extruding G1 moves in a
    zig-zag inside a 250×210 bed (X 40–80, Y 40–90, one layer), cool-down footer."""
    lines = list(HEADER)
    for i in range(moves):
        x = 40.0 + (i % 2) * 40.0 + (i % 7) * 0.013
        y = 40.0 + (i // 2 % 100) * 0.5
        lines.append(f"G1 X{x:.3f} Y{y:.3f} E0.05 F3000")
    lines += FOOTER
    return "\n".join(lines) + "\n"


def gcode_file(folder: Path, name: str, size_bytes: int) -> Path:
    """A program of about ``size_bytes`` (one move line is ~31 bytes)."""
    path = folder / name
    per_line = len(gcode_program(1000)) / 1000
    path.write_text(gcode_program(int(size_bytes / per_line)))
    return path


# -- OctoPrint over plain REST -----------------------------------------------------------------

class Octo:
    """The few plain REST calls the benchmarks make straight to one OctoPrint."""

    def __init__(self, instance: OctoPrintInstance) -> None:  # type: ignore[valid-type]
        self.instance = instance
        self.url: str = instance.url
        self.session = requests.Session()
        self.session.headers["X-Api-Key"] = instance.api_key

    def state(self) -> str:
        return str(self.session.get(f"{self.url}/api/job", timeout=10).json().get("state", ""))

    def upload_and_print(self, path: Path, name: str) -> None:
        with path.open("rb") as handle:
            r = self.session.post(f"{self.url}/api/files/local", timeout=120,
                                  files={"file": (name, handle, "application/octet-stream")},
                                  data={"select": "true", "print": "true"})
        r.raise_for_status()

    def cancel(self) -> None:
        self.session.post(f"{self.url}/api/job", json={"command": "cancel"}, timeout=10)

    def file_info(self, path: str) -> dict[str, Any]:
        r = self.session.get(f"{self.url}/api/files/local/{path}", timeout=10)
        return r.json() if r.status_code == 200 else {}

    def last_print_s(self, path: str) -> float | None:
        return self.last_print(path)[0]

    def last_print(self, path: str) -> tuple[float | None, float | None]:
        """(print time s, epoch s when it ended) of the file's last print."""
        last = (self.file_info(path).get("prints") or {}).get("last") or {}
        return last.get("printTime"), last.get("date")

    def wait_state(self, wanted: Callable[[str], bool], timeout_s: float = 60.0) -> float:
        """Poll until the state matches; returns the monotonic time it was first seen."""
        deadline = time.monotonic() + timeout_s
        while True:
            if wanted(self.state()):
                return time.monotonic()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.url}: state stayed {self.state()!r}")
            time.sleep(POLL_S)

    def wait_idle(self, timeout_s: float = 30.0) -> None:
        self.wait_state(lambda s: s == "Operational", timeout_s)

    def wait_analysed(self, path: str, timeout_s: float = 90.0) -> None:
        """OctoPrint analyses a new file in the background once idle: let it finish, so the
        next timed run doesn't share the CPU with it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.file_info(path).get("gcodeAnalysis"):
                return
            time.sleep(0.25)


def printing(state: str) -> bool:
    return state.startswith("Printing")


# -- the stack with OctoPrint printers ---------------------------------------------------------

class Farm:
    """A FabQueue stack, ``n`` OctoPrint Virtual Printers, one site with one pool of them."""

    def __init__(self, root: Path, printers: int, prefix: str = "op") -> None:
        self.root = root
        self.prefix = prefix
        self.count = printers
        self.instances: list[OctoPrintInstance] = []  # type: ignore[valid-type]
        self.octo: dict[str, Octo] = {}
        self.device_procs: list[subprocess.Popen[bytes]] = []
        self.stack: Stack | None = None
        self.site = ""
        self.env: dict[str, str] = {}

    @property
    def ids(self) -> list[str]:
        return [f"{self.prefix}-{i + 1}" for i in range(self.count)]

    def __enter__(self) -> Farm:
        if not octoprint_instance_module.octoprint_available():
            raise SystemExit("OctoPrint is not installed: run scripts/install_octoprint.sh")
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _start(self) -> None:
        for i in range(self.count):
            self.instances.append(OctoPrintInstance(self.root / f"octoprint-{i + 1}").launch())
        (self.root / "stack").mkdir()
        self.stack = build_stack(self.root / "stack", external=False)
        self.stack.start_worker()
        for instance in self.instances:
            instance.ready()
        self.env = dict(self.stack.env)
        devices = []
        for device_id, instance in zip(self.ids, self.instances, strict=True):
            env_name = f"FABQUEUE_DEVICE_BENCH_KEY_{secrets.token_hex(4).upper()}"
            os.environ[env_name] = self.env[env_name] = instance.api_key
            devices.append({"id": device_id, "site": "", "kind": "printer",
                            "driver": "octoprint", "url": instance.url,
                            "api_key_env": env_name, "build_volume_mm": (250, 210, 220),
                            "materials": ["PLA"], "profile": "prusa_mk4"})
            self.octo[device_id] = Octo(instance)
        self.site = new_site(self.stack, devices)
        self.client = self.stack.client()
        self.staff = self.stack.token(self.client, self.stack.user("staff", self.site))

    def close(self) -> None:
        self.stop_device_workers()
        if self.stack is not None:
            self.stack.stop_workers()
            if self.stack.redis_owner is not None:
                self.stack.redis_owner.stop()
        for instance in self.instances:
            instance.stop()

    # -- device workers ---------------------------------------------------------------------
    def start_device_workers(self, poll_s: float | None = None) -> None:
        """One ``fabqueue device-worker`` process per printer, as ``fabqueue serve`` runs
        them; with ``poll_s``, the same worker at another poll interval."""
        for device_id in self.ids:
            log = (self.root / f"device-{device_id}.log").open("wb")
            command = [sys.executable, "-m", "fabqueue", "device-worker", device_id]
            if poll_s is not None:
                command = [sys.executable, "-c", WORKER_AT_POLL, device_id, str(poll_s)]
            self.device_procs.append(subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT))
            log.close()

    def stop_device_workers(self) -> None:
        for proc in self.device_procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.device_procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.device_procs.clear()

    # -- jobs -------------------------------------------------------------------------------
    def upload(self, path: Path) -> int:
        with path.open("rb") as f:
            r = self.client.post("/api/jobs", headers=self.staff, files={"file": (path.name, f)},
                                 data={"material": "PLA", "site": self.site})
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    def statuses(self, ids: list[int]) -> dict[int, str]:
        assert self.stack is not None
        with self.stack.ctx.db.session() as s:
            return dict(s.execute(select(Job.id, Job.status).where(Job.id.in_(ids))).all())

    def wait_all(self, ids: list[int], wanted: set[str], timeout_s: float) -> None:
        def check() -> bool:
            st = self.statuses(ids)
            bad = {i: v for i, v in st.items() if v in ("failed", "rejected")}
            if bad:
                raise RuntimeError(f"jobs failed before printing: {bad}")
            return all(v in wanted for v in st.values())

        wait_for(check, timeout=timeout_s, interval=0.2, what=f"{len(ids)} jobs to be {wanted}")

    def submit_ready(self, paths: list[Path], timeout_s: float = 600) -> list[int]:
        """Upload as staff (G-code: no slicing), approve, and wait until all are ready."""
        ids = [self.upload(p) for p in paths]
        self.wait_all(ids, {"awaiting_approval"}, timeout_s)
        for job_id in ids:
            r = self.client.post(f"/api/jobs/{job_id}/approve", headers=self.staff)
            assert r.status_code == 200, r.text
        self.wait_all(ids, {"ready"}, timeout_s)
        return ids

    def device(self, device_id: str) -> dict[str, Any]:
        return dict(self.client.get(f"/api/devices/{device_id}", headers=self.staff).json())

    def devices(self) -> list[dict[str, Any]]:
        r = self.client.get("/api/devices", params={"site": self.site}, headers=self.staff)
        return list(r.json())

    def bed_cleared(self, device_id: str, wake: bool = False) -> None:
        r = self.client.post(f"/api/devices/{device_id}/bed-cleared", headers=self.staff)
        assert r.status_code == 200, r.text
        if wake:
            assert self.stack is not None
            control.send(self.stack.ctx.redis, device_id, "bed_cleared")

    def stop(self, device_id: str) -> None:
        r = self.client.post(f"/api/devices/{device_id}/stop", headers=self.staff)
        assert r.status_code == 200, r.text

    def events(self, job_id: int) -> list[tuple[str, str | None, float]]:
        """(action, to status, epoch seconds) of a job's audit events."""
        assert self.stack is not None
        with self.stack.ctx.db.session() as s:
            rows = s.execute(select(JobEvent.action, JobEvent.to_status, JobEvent.at).where(
                JobEvent.job_id == job_id).order_by(JobEvent.id)).all()
        return [(a, to, _epoch(at)) for a, to, at in rows]


def _epoch(at: datetime) -> float:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


@contextmanager
def farm(printers: int, prefix: str = "op") -> Iterator[Farm]:
    with tempfile.TemporaryDirectory(prefix="fq-bench-") as tmp, ExitStack() as stack:
        yield stack.enter_context(Farm(Path(tmp), printers, prefix))


# -- RESULTS.md --------------------------------------------------------------------------------

def write_section(section: str, body: str) -> None:
    """Replace (or append) only ``section`` of RESULTS.md; other sections are others'."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(section)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    block = f"{section}\n\n{body.strip()}\n\n"
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)  # the rest of the file stays byte for byte
    else:
        text = text.rstrip("\n") + "\n\n" + block.rstrip("\n") + "\n"
    RESULTS.write_text(text)


def write_subsection(section: str, heading: str, body: str, preface: str = "") -> None:
    """Replace (or add) ``### heading`` inside our ``section``, keeping its other parts."""
    text = RESULTS.read_text() if RESULTS.exists() else ""
    match = re.search(rf"^{re.escape(section)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    parts = re.split(r"^(?=### )", match.group(1) if match else "", flags=re.MULTILINE)
    subs = {p.split("\n", 1)[0]: p for p in parts[1:]}
    subs[f"### {heading}"] = f"### {heading}\n\n{body.strip()}\n\n"
    intro = preface.strip() or parts[0].strip()
    write_section(section, f"{intro}\n\n" + "".join(subs[k] for k in sorted(subs)))


def commit() -> str:
    """The commit measured (``+changes`` when the working tree differs from it)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              timeout=30).stdout.strip()

    dirty = git("status", "--porcelain", "--", "fabqueue")
    return git("rev-parse", "--short", "HEAD") + ("+changes" if dirty else "")


def machine_line(command: str) -> str:
    load = os.getloadavg()[0]
    return (f"Command: `{command}` (commit {commit()}, {time.strftime('%Y-%m-%d')}, "
            f"{platform.machine()}, "
            f"Python {platform.python_version()}, {os.cpu_count()} cores, load average "
            f"{load:.1f} at the end: the machine is shared)")


# -- the dispatch benchmark --------------------------------------------------------------------

def reference_run(octo: Octo, program: Path, n: int) -> float:
    name = f"ref-{n}.gcode"
    started = time.monotonic()
    octo.upload_and_print(program, name)
    seen = octo.wait_state(printing)
    octo.cancel()
    octo.wait_idle()
    octo.wait_analysed(name)
    return seen - started


def driver_run(octo: Octo, program: Path, n: int) -> tuple[float, dict[str, float]]:
    """FabQueue's OctoPrint driver alone (no worker, no database): its ``start`` timed to
    ``Printing``, with the time of each REST call it makes."""
    from fabqueue.drivers.octoprint import OctoPrintDriver

    driver = OctoPrintDriver(octo.url, octo.instance.api_key)
    calls: dict[str, float] = {}

    def timed(response: requests.Response, *_args: object, **_kwargs: object) -> None:
        path = str(response.request.path_url).split("?")[0]
        key = f"{response.request.method} {re.sub(r'fq-[^/]+', 'fq-N.gcode', path)}"
        calls[key] = calls.get(key, 0.0) + response.elapsed.total_seconds()

    driver._session.hooks["response"].append(timed)
    try:
        started = time.monotonic()
        driver.start(f"fq-driver-{n}", program)
        seen = octo.wait_state(printing)
    finally:
        driver.close()
    octo.cancel()
    octo.wait_idle()
    octo.wait_analysed(f"fabqueue/fq-driver-{n}.gcode")
    return seen - started, calls


def fabqueue_run(f: Farm, device_id: str, job_id: int, wake: bool) -> dict[str, float]:
    octo = f.octo[device_id]
    started_wall = time.time()
    started = time.monotonic()
    f.bed_cleared(device_id, wake=wake)
    seen = octo.wait_state(printing)
    total = seen - started
    running_at = next(at for _a, to, at in f.events(job_id) if to == "running")
    claimed = running_at - started_wall
    f.stop(device_id)
    wait_for(lambda: f.device(device_id)["state"] == "needs_bed_clear", timeout=30,
             interval=0.1, what="needs_bed_clear after stop")
    octo.wait_idle()
    octo.wait_analysed(f"fabqueue/fq-{job_id}.gcode")
    return {"total": total, "claim": claimed, "start": total - claimed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size-mb", type=float, default=10.0)
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args(argv)
    began = time.monotonic()
    ref: list[float] = []
    alone: list[float] = []
    calls: list[dict[str, float]] = []
    runs: list[dict[str, float]] = []
    with farm(1, prefix="opd") as f:
        device_id = f.ids[0]
        octo = f.octo[device_id]
        program = gcode_file(f.root, "ten-mb.gcode", int(args.size_mb * 1e6))
        size = program.stat().st_size
        print(f"program: {size / 1e6:.1f} MB, {program.read_text().count(chr(10))} lines")
        # one warm-up job (printed, then stopped: leaves the printer in needs_bed_clear)
        jobs = f.submit_ready([program] * (1 + args.repeats))
        print(f"{len(jobs)} jobs ready after {time.monotonic() - began:.0f} s")
        f.start_device_workers()
        octo.wait_state(printing, timeout_s=120)
        f.stop(device_id)
        wait_for(lambda: f.device(device_id)["state"] == "needs_bed_clear", timeout=30,
                 interval=0.1, what="needs_bed_clear")
        octo.wait_idle()
        octo.wait_analysed(f"fabqueue/fq-{jobs[0]}.gcode")
        pending = iter(jobs[1:])
        for n in range(args.repeats):
            ref.append(reference_run(octo, program, n))
            seconds, timings = driver_run(octo, program, n)
            alone.append(seconds)
            calls.append(timings)
            runs.append(fabqueue_run(f, device_id, next(pending), wake=False))
            print(f"run {n + 1}: reference {ref[-1]:.2f} s, driver alone {alone[-1]:.2f} s, "
                  f"FabQueue {runs[-1]['total']:.2f} s")
        f.stop_device_workers()
        poll_s = 1.0  # DeviceWorker's default, as ``fabqueue device-worker`` runs it
    ref_med = statistics.median(ref)

    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    rows = [
        "| path | median s | min s | max s | × reference | of which: bed-cleared → claimed "
        "| claimed → Printing | goal |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
        f"| plain upload with select+print (reference) | {ref_med:.2f} | {min(ref):.2f} "
        f"| {max(ref):.2f} | 1.00 |  |  |  |",
    ]
    rows.append(f"| FabQueue's OctoPrint driver alone (`start`) | {statistics.median(alone):.2f} "
                f"| {min(alone):.2f} | {max(alone):.2f} | {statistics.median(alone) / ref_med:.2f} "
                "|  |  |  |")
    totals = [r["total"] for r in runs]
    rows.append(
        f"| FabQueue at {commit()} | {med('total'):.2f} | {min(totals):.2f} "
        f"| {max(totals):.2f} | **{med('total') / ref_med:.2f}** | {med('claim'):.2f} "
        f"| {med('start'):.2f} | ≤ {GOAL} |")
    command = ".venv/bin/python bench/bench_dispatch.py --write"
    body = "\n".join([
        f"From `POST /api/devices/{{id}}/bed-cleared` to OctoPrint 1.11's `GET /api/job` "
        f"reporting `Printing`, for a {size / 1e6:.1f} MB G-code file (a staff upload: no "
        f"slicing), {args.repeats} runs each, interleaved; one OctoPrint Virtual Printer, one "
        f"`fabqueue device-worker` process (poll {poll_s:g} s, the default). The reference is "
        "one plain `POST /api/files/local` of the same file with `select=true, print=true`. "
        "\"bed-cleared → claimed\" ends at the job's `running` event (the worker took it); "
        "\"claimed → Printing\" is the driver's upload, select and print.",
        "",
        machine_line(command) + f"; took {time.monotonic() - began:.0f} s.",
        "",
        *rows,
        "",
        HISTORY,
        "",
        "The driver's `start`, call by call (median seconds over the runs; a REST call's time "
        "runs until OctoPrint's answer arrives):",
        "",
        "| call | median s |",
        "|---|---:|",
        *[f"| `{key}` | {statistics.median(c.get(key, 0.0) for c in calls):.3f} |"
          for key in calls[0]],
    ])
    print(body)
    if args.write:
        write_section(SECTION, body)
        print(f"\nwritten to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
