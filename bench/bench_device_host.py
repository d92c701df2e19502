"""Many machines per process: memory and CPU of the device host beside one process per machine.

    .venv/bin/python bench/bench_device_host.py [--machines 50] [--window 30] [--skip-demo]

1. The idle demo: ``fabqueue serve --demo`` (5 machines: 4 simulated printers, a GRBL
   laser on the emulator), once with the device host (the default) and once with
   ``FABQUEUE_MACHINES_IN_ONE_PROCESS=false`` (a ``device-worker`` process per machine),
   each in a fresh
   data folder. After the machines connected and settled, PSS (psutil) and CPU summed over
   serve's whole process tree (serve, Redis, the RQ workers, the machines' processes, the
   laser's emulator) for ``--window`` seconds.
2. A farm: ``--machines`` simulated printers in one site of a real stack (embedded Redis,
   SQLite), driven by one ``fabqueue device-host --site`` process, then by one
   ``fabqueue device-worker`` process each. Measured over the machines' processes: idle PSS
   and CPU; all printing (one job each, long enough to outlast the window) PSS and CPU; then
   bed-cleared → printing, one ``POST /api/devices/{id}/bed-cleared`` every 0.1 s with a
   job ready in the pool for each, timed until the machine's row shows the next job started
   (heating). The site's heating limit is raised to the farm's size
   (``FABQUEUE_MAX_HEATING_PER_SITE``): it would otherwise hold starts back on purpose,
   which is the interlock's time, not the worker's.

The lease's time to live is production's 15 s (its keeper renews every 5 s). Every process
started here is stopped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # tests/ and fabqueue/ when run as ``python bench/…``

import httpx  # noqa: E402
import psutil  # noqa: E402
from sqlalchemy import select  # noqa: E402

from fabqueue.queue import names  # noqa: E402
from fabqueue.queue.pipeline import push_ready  # noqa: E402
from fabqueue.store.models import Device, Job, User  # noqa: E402
from tests.conftest import Stack, build_stack, free_port, wait_for  # noqa: E402
from tests.queue.helpers import new_site, printer  # noqa: E402

MB = 1024 * 1024


# -- measuring a set of processes ---------------------------------------------------------------

def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def pss_mb(procs: list[psutil.Process]) -> float:
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += p.memory_full_info().pss
    return total / MB


def cpu_s(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def measure(procs_of: Any, window_s: float) -> dict[str, Any]:
    """PSS (MB, at the window's end) and CPU (% of one core over the window), in all and
    per process (``each``: pid → (PSS MB, CPU %))."""
    procs = procs_of()
    c0, t0 = {p.pid: cpu_s([p]) for p in procs}, time.monotonic()
    time.sleep(window_s)
    procs = procs_of()  # the same processes (none restarted: checked by the callers)
    c1, t1 = {p.pid: cpu_s([p]) for p in procs}, time.monotonic()
    each = {p.pid: (pss_mb([p]), 100.0 * (c1[p.pid] - c0.get(p.pid, c1[p.pid])) / (t1 - t0))
            for p in procs}
    return {"pss_mb": sum(v[0] for v in each.values()),
            "cpu_pct": sum(v[1] for v in each.values()),
            "processes": float(len(procs)), "each": each}


def role(p: psutil.Process) -> str:
    with contextlib.suppress(psutil.NoSuchProcess):
        cmd = p.cmdline()
        for word in ("device-host", "device-worker", "serve"):
            if word in cmd:
                return word
        if "worker" in cmd:
            return "rq worker" if p.parent() and "worker" not in p.parent().cmdline() \
                else "rq work-horse"
        if "redis" in p.name():
            return "redis"
        if any("grbl_emulator" in c for c in cmd):
            return "grbl emulator"
    return "other"


# -- 1. the idle demo ---------------------------------------------------------------------------

def idle_demo(layout: str, window_s: float, settle_s: float) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix=f"bench-dh-demo-{layout}-"))
    env = {k: v for k, v in os.environ.items()
           if k not in ("FABQUEUE_DATA_DIR", "DATABASE_URL", "REDIS_URL")}
    env["FABQUEUE_MACHINES_IN_ONE_PROCESS"] = "true" if layout == "host" else "false"
    port = free_port()
    out = (root / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "fabqueue", "serve", "--demo", "--port",
                             str(port), "--data-dir", str(root / "data")], env=env,
                            stdout=out, stderr=subprocess.STDOUT)
    try:
        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/api/health",
                                 timeout=2).json()["status"] == "ok"
            except (httpx.HTTPError, ValueError):
                return False

        wait_for(healthy, timeout=120, interval=0.5, what="serve --demo to answer")
        db = root / "data" / "fabqueue.sqlite3"

        def all_idle() -> bool:
            import sqlite3

            with contextlib.closing(sqlite3.connect(db)) as conn:
                states = [r[0] for r in conn.execute("SELECT state FROM devices")]
            return bool(states) and all(s == "idle" for s in states)

        wait_for(all_idle, timeout=120, interval=0.5, what="the demo's machines idle")
        time.sleep(settle_s)  # imports done, first looks made, RQ workers waiting
        before = {p.pid for p in tree(proc.pid)}
        got = measure(lambda: tree(proc.pid), window_s)
        procs = tree(proc.pid)
        assert {p.pid for p in procs} == before, "a process was restarted during the window"
        by_role: dict[str, list[tuple[float, float]]] = {}
        for p in procs:
            by_role.setdefault(role(p), []).append(got["each"][p.pid])
        got["by_role"] = {k: (len(v), sum(x[0] for x in v), sum(x[1] for x in v))
                          for k, v in sorted(by_role.items())}
        return got
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()


# -- 2. the farm --------------------------------------------------------------------------------

#: a print of ``minutes`` of slicer time (the simulated printer divides it by its speed)
def program(minutes: float) -> bytes:
    return f"M73 P0 R{minutes:g}\nG28\nG1 X10 Y10 F3000\nG1 X20 Y20\nM73 P100 R0\n".encode()


class Farm:
    def __init__(self, root: Path, machines: int) -> None:
        os.environ["FABQUEUE_MAX_HEATING_PER_SITE"] = str(machines)
        self.stack: Stack = build_stack(root, external=False)
        self.stack.ctx.settings.max_heating_per_site = machines
        self.ids = [f"farm-{i + 1:02d}" for i in range(machines)]
        # speed 1: a job's minutes of slicer time are a minute each on the printer
        self.site = new_site(self.stack, [printer(d, ["PLA"], simulated_speed=1)
                                          for d in self.ids])
        with self.stack.ctx.db.session() as s:
            d = s.get(Device, self.ids[0])
            assert d is not None
            self.pool = names.pool_queue(d.site_id, d.printer_class or d.kind)
        self.client = self.stack.client()
        self.staff = self.stack.token(self.client, self.stack.user("staff", self.site))
        self.env = {**self.stack.env, "FABQUEUE_LEASE_TTL_S": "15",
                    "FABQUEUE_MAX_HEATING_PER_SITE": str(machines)}
        self.procs: list[subprocess.Popen[bytes]] = []

    def close(self) -> None:
        self.stop_machines()
        if self.stack.redis_owner is not None:
            self.stack.redis_owner.stop()

    # -- the machines' processes ----------------------------------------------------------
    def start_machines(self, layout: str) -> None:
        log = (self.stack.data_dir / f"machines-{layout}.log").open("ab")
        if layout == "host":
            argv = [[sys.executable, "-m", "fabqueue", "device-host", "--site", self.site]]
        else:
            argv = [[sys.executable, "-m", "fabqueue", "device-worker", d] for d in self.ids]
        for a in argv:
            self.procs.append(subprocess.Popen(a, env=self.env, stdout=log,
                                               stderr=subprocess.STDOUT))
        log.close()

    def stop_machines(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.clear()

    def machine_procs(self) -> list[psutil.Process]:
        return [psutil.Process(p.pid) for p in self.procs if p.poll() is None]

    # -- the database's view --------------------------------------------------------------
    def leased(self) -> bool:
        with self.stack.ctx.db.session() as s:
            return all(d.lease_owner for d in s.scalars(
                select(Device).where(Device.site_id == self.site)))

    def rows(self) -> dict[str, tuple[str, int | None]]:
        with self.stack.ctx.db.session() as s:
            return {d.id: (d.state, d.current_job_id) for d in s.scalars(
                select(Device).where(Device.site_id == self.site))}

    def wait_states(self, wanted: set[str], timeout: float) -> None:
        wait_for(lambda: all(st in wanted for st, _ in self.rows().values()),
                 timeout=timeout, interval=0.5, what=f"every machine {wanted}")

    def ready_jobs(self, minutes: float) -> list[int]:
        owner = self.stack.user("resident")
        sha = self.stack.ctx.files.put_bytes(program(minutes))
        with self.stack.ctx.db.session() as s:
            uid = s.scalars(select(User.id).where(User.name == owner)).one()
            jobs = [Job(kind="print", status="ready", owner_id=uid, site_id=self.site,
                        material_id="PLA", file_sha256=sha, file_name=f"farm-{i}.gcode",
                        file_format="gcode", size_bytes=len(program(minutes)),
                        program_sha256=sha, analysis={"ok": True, "fits": self.ids},
                        slice_result={"estimated_seconds": minutes * 60})
                    for i in range(len(self.ids))]
            s.add_all(jobs)
            s.flush()
            ids = [j.id for j in jobs]
        for j in ids:
            push_ready(self.stack.ctx, j, self.pool)
        return ids

    def bed_clear_latencies(self, gap_s: float = 0.1) -> list[float]:
        """Each machine waits at needs_bed_clear with a job ready in the pool; one
        bed-clear every ``gap_s``; seconds from the POST to the next job started there."""
        before = self.rows()
        cleared: dict[str, float] = {}
        started: dict[str, float] = {}
        for device_id in self.ids:
            job = before[device_id][1]
            t = time.monotonic()
            r = self.client.post(f"/api/devices/{device_id}/bed-cleared",
                                 headers=self.staff, json={"job": job})
            assert r.status_code == 200, r.text
            cleared[device_id] = t
            self._note_starts(before, cleared, started)
            while time.monotonic() - t < gap_s:
                self._note_starts(before, cleared, started)
                time.sleep(0.01)
        deadline = time.monotonic() + 120
        while len(started) < len(self.ids) and time.monotonic() < deadline:
            self._note_starts(before, cleared, started)
            time.sleep(0.01)
        assert len(started) == len(self.ids), sorted(set(self.ids) - started.keys())
        return [started[d] - cleared[d] for d in self.ids]

    def _note_starts(self, before: dict[str, tuple[str, int | None]],
                     cleared: dict[str, float], started: dict[str, float]) -> None:
        now = time.monotonic()
        for device_id, (state, job) in self.rows().items():
            if device_id in cleared and device_id not in started and \
                    job not in (None, before[device_id][1]) and state in ("heating", "busy"):
                started[device_id] = now


def farm_run(farm: Farm, layout: str, window_s: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    t0 = time.monotonic()
    farm.start_machines(layout)
    wait_for(farm.leased, timeout=600, interval=0.5, what="every machine's lease taken")
    farm.wait_states({"idle"}, timeout=600)
    out["ready_s"] = time.monotonic() - t0
    time.sleep(10)  # settled: every machine's first looks made
    out["idle"] = measure(farm.machine_procs, window_s)
    # all printing: one job each, ~window + 60 s long
    minutes = (window_s + 60) / 60
    farm.ready_jobs(minutes)
    farm.wait_states({"heating", "busy"}, timeout=300)
    farm.wait_states({"busy"}, timeout=120)
    out["printing"] = measure(farm.machine_procs, window_s)
    farm.wait_states({"needs_bed_clear"}, timeout=300)
    # the next jobs wait in the pool; staff clear the beds one after another
    farm.ready_jobs(0.2)
    time.sleep(3)  # the queue entries seen; nothing starts before the bed-clear
    lat = sorted(farm.bed_clear_latencies())
    out["bed_clear"] = {"p50": statistics.median(lat), "p95": lat[int(0.95 * (len(lat) - 1))],
                        "max": lat[-1]}
    farm.wait_states({"needs_bed_clear"}, timeout=300)
    farm.stop_machines()
    # the next layout starts from the same floor: beds cleared, nothing queued
    with farm.stack.ctx.db.session() as s:
        for d in s.scalars(select(Device).where(Device.site_id == farm.site)):
            d.state, d.current_job_id, d.progress = "idle", None, None
    return out


@contextmanager
def farm_of(machines: int) -> Iterator[Farm]:
    farm = Farm(Path(tempfile.mkdtemp(prefix="bench-dh-farm-")), machines)
    try:
        yield farm
    finally:
        farm.close()


# -- report -------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--machines", type=int, default=50)
    ap.add_argument("--window", type=float, default=30.0, help="seconds each measurement")
    ap.add_argument("--settle", type=float, default=20.0)
    ap.add_argument("--skip-demo", action="store_true")
    ap.add_argument("--skip-farm", action="store_true")
    ap.add_argument("--layouts", default="host,process", help="host, process or both")
    args = ap.parse_args()
    layouts = [x.strip() for x in args.layouts.split(",") if x.strip()]
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
          f"{os.cpu_count()} cores")
    if not args.skip_demo:
        print("\n## idle demo (serve --demo, 5 machines), whole tree")
        demo = {layout: idle_demo(layout, args.window, args.settle) for layout in layouts}
        print("| layout | processes | PSS MB | CPU % of a core | the machines' processes: "
              "PSS MB, CPU % |")
        print("|---|---:|---:|---:|---|")
        for layout, r in demo.items():
            machines = [f"{n}× {k}: {m:.0f} MB, {c:.2f}%" for k, (n, m, c) in
                        r["by_role"].items() if k in ("device-host", "device-worker")]
            print(f"| {layout} | {r['processes']:.0f} | {r['pss_mb']:.0f} | "
                  f"{r['cpu_pct']:.2f} | {'; '.join(machines)} |")
        for layout, r in demo.items():
            print(f"{layout}: " + ", ".join(f"{k} {n}× {m:.0f} MB {c:.2f}%"
                                            for k, (n, m, c) in r["by_role"].items()))
        if len(demo) == 2:
            h, p = demo["host"], demo["process"]
            print(f"ratio host/process: PSS {h['pss_mb'] / p['pss_mb']:.2f}, "
                  f"CPU {h['cpu_pct'] / max(p['cpu_pct'], 1e-9):.2f}")
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if not args.skip_farm:
        n = args.machines
        print(f"\n## farm: {n} simulated printers in one site, the machines' processes")
        with farm_of(n) as farm:
            runs = {layout: farm_run(farm, layout, args.window) for layout in layouts}
        print("| layout | phase | processes | PSS MB | per machine MB | CPU % of a core | "
              "per machine % |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for layout, r in runs.items():
            for phase in ("idle", "printing"):
                m = r[phase]
                print(f"| {layout} | {phase} | {m['processes']:.0f} | {m['pss_mb']:.0f} | "
                      f"{m['pss_mb'] / n:.1f} | {m['cpu_pct']:.2f} | "
                      f"{m['cpu_pct'] / n:.3f} |")
        for layout, r in runs.items():
            b = r["bed_clear"]
            print(f"{layout}: bed-cleared → printing p50 {b['p50']:.2f} s, p95 {b['p95']:.2f} s, "
                  f"max {b['max']:.2f} s (one bed-clear every 0.1 s); all {n} connected and "
                  f"idle {r['ready_s']:.0f} s after start")
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
