"""Many machines per process: memory and CPU of the device host beside one process per machine.

    .venv/bin/python bench/bench_device_host.py [--machines 50] [--octoprints 4] [--window 30]
        [--skip-demo] [--layouts host,process]

1. The idle demo: ``fabqueue serve --demo`` (5 machines: 4 simulated printers, a GRBL
   laser on the emulator), once with the device host (the default) and once with
   ``FABQUEUE_MACHINES_IN_ONE_PROCESS=false`` (a ``device-worker`` process per machine),
   each in a fresh
   data folder. After the machines connected and settled, PSS (psutil) and CPU summed over
   serve's whole process tree (serve, Redis, the RQ workers, the machines' processes, the
   laser's emulator) for ``--window`` seconds.
2. A farm: ``--machines`` simulated printers and ``--octoprints`` real OctoPrint 1.11
   instances with their Virtual Printer (tests/octoprint_fixtures.py; OctoPrint's own venv,
   scripts/install_octoprint.sh) in one site and pool of a real stack (embedded Redis,
   SQLite), driven by one ``fabqueue device-host --site`` process, then by one
   ``fabqueue device-worker`` process each. Measured over the machines' processes (the
   OctoPrint servers are peers, not FabQueue: their own PSS/CPU on a line apart): idle PSS
   and CPU; all printing (one job each, long enough to outlast the window) PSS and CPU; then
   bed-cleared → printing, one ``POST /api/devices/{id}/bed-cleared`` every 0.1 s with a
   job ready in the pool for each, timed until the machine's row shows the next job started
   (heating); reported for all machines and for the OctoPrint ones apart (their start
   uploads the file first). The site's heating limit is raised to the farm's size
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
from tests.octoprint_fixtures import (  # noqa: E402
    OctoPrintInstance,
    ensure_idle,
    octoprint_instance_module,
    said_why,
)
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


def measure(procs_of: Any, window_s: float, peers_of: Any = None) -> dict[str, Any]:
    """PSS (MB, at the window's end) and CPU (% of one core over the window), in all and
    per process (``each``: pid → (PSS MB, CPU %)). ``peers_of``: other processes measured
    over the same window but apart (``peers``), so they never count as ours."""
    groups = {"ours": procs_of, **({"peers": peers_of} if peers_of is not None else {})}
    procs = {k: f() for k, f in groups.items()}
    c0, t0 = {p.pid: cpu_s([p]) for v in procs.values() for p in v}, time.monotonic()
    time.sleep(window_s)
    procs = {k: f() for k, f in groups.items()}  # the same ones (none restarted: see callers)
    c1, t1 = {p.pid: cpu_s([p]) for v in procs.values() for p in v}, time.monotonic()
    got: dict[str, dict[str, Any]] = {}
    for k, v in procs.items():
        each = {p.pid: (pss_mb([p]), 100.0 * (c1[p.pid] - c0.get(p.pid, c1[p.pid])) / (t1 - t0))
                for p in v}
        got[k] = {"pss_mb": sum(x[0] for x in each.values()),
                  "cpu_pct": sum(x[1] for x in each.values()),
                  "processes": float(len(v)), "each": each}
    return {**got["ours"], **({"peers": got["peers"]} if "peers" in got else {})}


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

DWELL_CHUNK_MS = 5000


def program(minutes: float) -> bytes:
    """A print of ``minutes`` on either kind of machine. The simulated printer takes its time
    from ``M73 P0 R<minutes>`` (divided by its speed, 1 here) and skips every other line
    but M ones, so the G4s change nothing for it. OctoPrint's Virtual Printer runs the G-code
    at its own (sped-up) pace, a few moves in well under a second, but sleeps a G4's dwell in
    real time: ``G4 P<ms>`` for as long, in 5 s pieces so that it answers OctoPrint's
    temperature polls between them instead of going silent for the whole print."""
    dwell_ms = round(minutes * 60_000)
    pieces = [DWELL_CHUNK_MS] * (dwell_ms // DWELL_CHUNK_MS)
    if dwell_ms % DWELL_CHUNK_MS:
        pieces.append(dwell_ms % DWELL_CHUNK_MS)
    dwell = "".join(f"G4 P{ms}\n" for ms in pieces)
    return (f"M73 P0 R{minutes:g}\nG28\nG1 X10 Y10 F3000\nG1 X20 Y20\n{dwell}"
            "M73 P100 R0\n").encode()


def start_octoprints(root: Path, count: int) -> list[OctoPrintInstance]:  # type: ignore[valid-type]
    """``count`` OctoPrint servers with their Virtual Printer, booted side by side (as the
    ``octoprint_pair`` fixture: about one boot's wait for all). A generous timeout: four
    booting at once on a shared 2-core machine are slower than the fixture's one or two."""
    if count and not octoprint_instance_module.octoprint_available():
        raise SystemExit(f"OctoPrint not installed at "
                         f"{octoprint_instance_module.octoprint_executable()}: run "
                         "scripts/install_octoprint.sh, or pass --octoprints 0")
    instances = [OctoPrintInstance(root / f"octoprint-{i + 1}") for i in range(count)]
    try:
        with said_why(*instances):
            for instance in instances:
                instance.launch()
            for instance in instances:
                instance.ready(ready_timeout_s=240)
    except BaseException:
        stop_octoprints(instances)
        raise
    return instances


def stop_octoprints(instances: list[OctoPrintInstance]) -> None:  # type: ignore[valid-type]
    for instance in instances:
        with contextlib.suppress(Exception):
            instance.stop()


class Farm:
    def __init__(self, root: Path, machines: int,
                 octoprints: list[OctoPrintInstance] | None = None) -> None:  # type: ignore[valid-type]
        self.octoprints = octoprints or []
        total = machines + len(self.octoprints)
        os.environ["FABQUEUE_MAX_HEATING_PER_SITE"] = str(total)
        self.stack: Stack = build_stack(root, external=False)
        self.stack.ctx.settings.max_heating_per_site = total
        self.sim_ids = [f"farm-{i + 1:02d}" for i in range(machines)]
        self.op_ids = [f"farm-op-{i + 1}" for i in range(len(self.octoprints))]
        self.ids = self.sim_ids + self.op_ids
        # The key stays in the environment, as in production: the devices name the variable.
        keys = {f"FABQUEUE_DEVICE_BENCH_FARM_OP_{i + 1}_KEY": o.api_key
                for i, o in enumerate(self.octoprints)}
        os.environ.update(keys)  # this process too (the stack's API runs in it)
        # speed 1: a job's minutes of slicer time are a minute each on the printer. The
        # OctoPrint machines have the same kind and profile (prusa_mk4), so the same
        # printer class: one pool for all.
        self.site = new_site(self.stack, [
            *(printer(d, ["PLA"], simulated_speed=1) for d in self.sim_ids),
            *(printer(d, ["PLA"], driver="octoprint", url=o.url, api_key_env=key,
                      simulated_speed=None)
              for d, o, key in zip(self.op_ids, self.octoprints, keys, strict=True))])
        with self.stack.ctx.db.session() as s:
            pools = {names.pool_queue(d.site_id, d.printer_class or d.kind)
                     for d in s.scalars(select(Device).where(Device.id.in_(self.ids)))}
            assert len(pools) == 1, f"the farm's machines are in several pools: {pools}"
            self.pool = pools.pop()
        self.client = self.stack.client()
        self.staff = self.stack.token(self.client, self.stack.user("staff", self.site))
        self.env = {**self.stack.env, **keys, "FABQUEUE_LEASE_TTL_S": "15",
                    "FABQUEUE_MAX_HEATING_PER_SITE": str(total)}
        self.procs: list[subprocess.Popen[bytes]] = []

    def close(self) -> None:
        self.stop_machines()
        if self.stack.redis_owner is not None:
            self.stack.redis_owner.stop()

    def peer_procs(self) -> list[psutil.Process]:
        """The OctoPrint servers' processes (peers: measured apart, never as ours)."""
        return [p for o in self.octoprints if o.process is not None and o.process.poll() is None
                for p in tree(o.process.pid)]

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

    def bed_clear_latencies(self, gap_s: float = 0.1) -> dict[str, float]:
        """Each machine waits at needs_bed_clear with a job ready in the pool; one
        bed-clear every ``gap_s``; seconds from the POST to the next job started there,
        by machine."""
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
        return {d: started[d] - cleared[d] for d in self.ids}

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
    out["idle"] = measure(farm.machine_procs, window_s, farm.peer_procs)
    # all printing: one job each, ~window + 60 s long
    minutes = (window_s + 60) / 60
    farm.ready_jobs(minutes)
    farm.wait_states({"heating", "busy"}, timeout=300)
    farm.wait_states({"busy"}, timeout=120)
    out["printing"] = measure(farm.machine_procs, window_s, farm.peer_procs)
    # the window must have found every machine printing still (an OctoPrint one included:
    # its dwell is the print's length)
    out["printing_after"] = sorted(d for d, (st, _) in farm.rows().items() if st != "busy")
    farm.wait_states({"needs_bed_clear"}, timeout=300)
    # the next jobs wait in the pool; staff clear the beds one after another
    farm.ready_jobs(0.2)
    time.sleep(3)  # the queue entries seen; nothing starts before the bed-clear
    by_machine = farm.bed_clear_latencies()
    out["bed_clear"] = spread(list(by_machine.values()))
    if farm.op_ids:
        out["bed_clear_octoprint"] = spread([by_machine[d] for d in farm.op_ids])
        out["bed_clear_simulated"] = spread([by_machine[d] for d in farm.sim_ids])
    farm.wait_states({"needs_bed_clear"}, timeout=300)
    farm.stop_machines()
    for instance in farm.octoprints:  # the next layout finds them Operational
        ensure_idle(instance)
    # the next layout starts from the same floor: beds cleared, nothing queued
    with farm.stack.ctx.db.session() as s:
        for d in s.scalars(select(Device).where(Device.site_id == farm.site)):
            d.state, d.current_job_id, d.progress = "idle", None, None
    return out


def spread(lat: list[float]) -> dict[str, float]:
    lat = sorted(lat)
    return {"p50": statistics.median(lat), "p95": lat[int(0.95 * (len(lat) - 1))],
            "max": lat[-1], "n": float(len(lat))}


@contextmanager
def farm_of(machines: int, octoprints: int) -> Iterator[Farm]:
    root = Path(tempfile.mkdtemp(prefix="bench-dh-farm-"))
    instances = start_octoprints(root, octoprints)
    try:
        farm = Farm(root, machines, instances)
        try:
            yield farm
        finally:
            farm.close()
    finally:
        stop_octoprints(instances)


# -- report -------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--machines", type=int, default=50, help="simulated printers")
    ap.add_argument("--octoprints", type=int, default=4,
                    help="real OctoPrint Virtual Printers in the same site and pool")
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
        n = args.machines + args.octoprints
        counts = f"{args.machines} simulated + {args.octoprints} OctoPrint"
        print(f"\n## farm: {counts} printers in one site, the machines' processes")
        with farm_of(args.machines, args.octoprints) as farm:
            runs = {layout: farm_run(farm, layout, args.window) for layout in layouts}
        print("| layout | phase | machines | processes | PSS MB | per machine MB | "
              "CPU % of a core | per machine % |")
        print("|---|---|---|---:|---:|---:|---:|---:|")
        for layout, r in runs.items():
            for phase in ("idle", "printing"):
                m = r[phase]
                print(f"| {layout} | {phase} | {counts} | {m['processes']:.0f} | "
                      f"{m['pss_mb']:.0f} | {m['pss_mb'] / n:.1f} | {m['cpu_pct']:.2f} | "
                      f"{m['cpu_pct'] / n:.3f} |")
        if args.octoprints:
            for layout, r in runs.items():
                for phase in ("idle", "printing"):
                    m = r[phase]["peers"]
                    print(f"{layout}, {phase}: the {args.octoprints} OctoPrint servers "
                          f"themselves (peers, not counted above): {m['processes']:.0f} "
                          f"processes, PSS {m['pss_mb']:.0f} MB, CPU {m['cpu_pct']:.2f}% of "
                          "a core")
        for layout, r in runs.items():
            if r["printing_after"]:
                print(f"{layout}: NOT printing at the printing window's end: "
                      f"{', '.join(r['printing_after'])}")
        print("\n| layout | machines | bed-cleared → printing p50 | p95 | max |")
        print("|---|---|---:|---:|---:|")
        for layout, r in runs.items():
            rows = [(counts, r["bed_clear"])]
            if args.octoprints:
                rows += [(f"{args.machines} simulated only", r["bed_clear_simulated"]),
                         (f"{args.octoprints} OctoPrint only", r["bed_clear_octoprint"])]
            for who, b in rows:
                print(f"| {layout} | {who} | {b['p50']:.2f} s | {b['p95']:.2f} s | "
                      f"{b['max']:.2f} s |")
        for layout, r in runs.items():
            print(f"{layout}: one bed-clear every 0.1 s; all {counts} connected and idle "
                  f"{r['ready_s']:.0f} s after start")
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
