"""Benchmark: from the start of an HTTP upload to the job's verdict, against admesh.

Run from the repository root:
    .venv/bin/python bench/bench_verdict.py [--runs 5] [--write]

Starts ``fabqueue serve --demo`` (embedded Redis and SQLite, as a user runs it) in a temp data
folder, writes the 1,003,520-triangle binary STL of bench_mesh.py (four geodesic spheres,
50 MB), and then, interleaved, ``--runs`` times: admesh reads and checks the file (wall time
and peak RSS from wait4), and a resident uploads it over HTTP with a bearer token. The
verdict's time is the job's ``analysed`` event (the server's clock, same machine), taken from
the job's audit log once polling sees the job leave ``analyzing``; the thumbnail may come
later and is waited for apart. The analysis worker's peak memory is read from /proc (the
work-horse RQ forks for the job): its VmHWM, the worker's RSS at the fork, and so what the
analysis itself added (the goal's figure: see ``HorseWatch``), and its private memory.
Prints medians and the ratios; ``--write`` updates "## Upload to verdict" in
bench/RESULTS.md, keeping the older figures under it.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mesh import commit, write_test_stl

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "RESULTS.md"
SECTION = "## Upload to verdict"
FABQUEUE = REPO / ".venv" / "bin" / "fabqueue"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# A child's ru_maxrss keeps the high-water mark of the process it was forked from (Linux
# carries it across exec), so admesh is started from a small wrapper, not from this process
# that holds the generated mesh: as bench_mesh.py measures it.
_WRAPPER = (
    "import os, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "p = subprocess.Popen(['admesh', sys.argv[1]], stdout=subprocess.DEVNULL,\n"
    "                     stderr=subprocess.DEVNULL)\n"
    "_, status, usage = os.wait4(p.pid, 0)\n"
    "print(time.perf_counter() - t, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status))\n"
)


def admesh(path: Path) -> tuple[float, float]:
    """(wall s, peak RSS MB) of admesh reading and checking the file."""
    done = subprocess.run([sys.executable, "-c", _WRAPPER, str(path)], capture_output=True,
                          text=True, check=True)
    wall, peak, code = done.stdout.split()[-3:]
    if code != "0":
        raise RuntimeError(f"admesh failed ({code}): {done.stdout[-500:]}")
    return float(wall), float(peak)


class HorseWatch:
    """Samples the RQ workers' forked work-horses every 5 ms: each horse's peak RSS (VmHWM,
    kept by the kernel, so exact), the RSS of the worker it was forked from at that moment,
    and its private memory (USS: Private_Clean + Private_Dirty of smaps_rollup, sampled every
    20 ms, so a lower bound of its true peak).

    A forked horse's VmHWM counts every page it shares with its worker (~100 MB of Python,
    SQLAlchemy, numpy, already resident and paid for once by the idle worker). What an upload
    costs the machine is the horse's own memory: ``growth`` = VmHWM − the worker's RSS at
    the fork (what the horse added on top of the pages it inherited) and ``uss`` (its private
    pages at the sampled peak, which also counts pages it copied on write).
    """

    def __init__(self, serve_pid: int) -> None:
        self.serve = psutil.Process(serve_pid)
        self.parent_mb = 0.0  # the RQ worker itself, which every horse starts as a copy of
        self._horses: dict[int, dict[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def workers(self) -> list[psutil.Process]:
        out = []
        for p in self.serve.children(recursive=True):
            try:
                cmd = p.cmdline()
            except psutil.Error:
                continue
            if "worker" in cmd and "device-worker" not in cmd:
                out.append(p)
        return out

    def start(self) -> None:
        self._workers = self.workers()
        self._thread.start()

    def _run(self) -> None:
        tick = 0
        while not self._stop.is_set():
            for w in self._workers:
                try:
                    horses = w.children()
                    worker_mb = w.memory_info().rss / 2**20
                except psutil.Error:
                    continue
                self.parent_mb = max(self.parent_mb, worker_mb)
                for h in horses:
                    seen = self._horses.setdefault(
                        h.pid, {"hwm": 0.0, "fork_rss": worker_mb, "uss": 0.0})
                    seen["hwm"] = max(seen["hwm"], hwm_mb(h.pid))
                    if tick % 4 == 0:
                        seen["uss"] = max(seen["uss"], uss_mb(h.pid))
            tick += 1
            time.sleep(0.005)

    def reset(self) -> dict[str, float]:
        """The largest figures of the horses seen since the last reset (0 when none)."""
        horses, self._horses = self._horses, {}
        out = {"hwm": 0.0, "growth": 0.0, "uss": 0.0, "fork_rss": 0.0}
        for h in horses.values():
            out["hwm"] = max(out["hwm"], h["hwm"])
            out["growth"] = max(out["growth"], h["hwm"] - h["fork_rss"])
            out["uss"] = max(out["uss"], h["uss"])
            out["fork_rss"] = max(out["fork_rss"], h["fork_rss"])
        return out

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def hwm_mb(pid: int) -> float:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    m = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(m.group(1)) / 1024 if m else 0.0


def uss_mb(pid: int) -> float:
    """Private (unshared) memory of a process now, from /proc/<pid>/smaps_rollup."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0.0
    return sum(int(v) for v in re.findall(r"Private_(?:Clean|Dirty):\s+(\d+) kB", text)) / 1024


def start_serve(data: Path, port: int) -> tuple[subprocess.Popen[str], dict[str, str]]:
    env = {**os.environ, "FABQUEUE_SECRET_KEY": secrets.token_urlsafe(48),
           "FABQUEUE_DATA_DIR": str(data)}
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    log = (data / "serve.log").open("w")
    proc = subprocess.Popen([str(FABQUEUE), "serve", "--demo", "--data-dir", str(data),
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=log,
                            text=True, cwd=REPO, env=env, start_new_session=True)
    passwords: dict[str, str] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        parts = line.split()
        if len(parts) == 3 and not line.startswith("demo"):
            passwords[parts[1]] = parts[2]
        if line.startswith("FabQueue on"):
            break
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # never block its pipe
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{base}/api/health").status_code == 200:
                return proc, passwords
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"serve did not answer; see {data / 'serve.log'}")


def at_seconds(iso: str) -> float:
    stamp = datetime.fromisoformat(iso)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def upload_to_verdict(client: httpx.Client, stl: Path) -> dict[str, float | str]:
    began = time.time()
    with stl.open("rb") as f:
        r = client.post("/api/jobs", files={"file": ("spheres.stl", f, "model/stl")},
                        data={"material": "PLA"})
    r.raise_for_status()
    job_id = r.json()["id"]
    uploaded = time.time()
    while True:
        status = client.get(f"/api/jobs/{job_id}").json()["status"]
        if status != "analyzing":
            break
        time.sleep(0.02)
    events = client.get(f"/api/jobs/{job_id}/events").json()
    analysed = next(e for e in events if e["action"] == "analysed")
    verdict = at_seconds(analysed["at"])
    thumb = None
    for _ in range(600):
        if client.get(f"/api/jobs/{job_id}").json().get("thumbnail_url"):
            thumb = time.time()
            break
        time.sleep(0.05)
    return {"total": verdict - began, "upload": uploaded - began, "status": status,
            "thumb_after": (thumb - began) if thumb else float("nan")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fq-verdict-") as tmp:
        stl = Path(tmp) / "spheres.stl"
        triangles = write_test_stl(stl)
        data = Path(tmp) / "data"
        data.mkdir()
        port = free_port()
        proc, passwords = start_serve(data, port)
        watch = HorseWatch(proc.pid)
        try:
            watch.start()
            base = f"http://127.0.0.1:{port}"
            token = httpx.post(f"{base}/api/auth/token", data={
                "username": "resident", "password": passwords["resident"]}).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            rows = []
            with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
                upload_to_verdict(client, stl)  # warm-up: first imports, caches
                watch.reset()
                for i in range(args.runs):
                    a_wall, a_mb = admesh(stl)
                    v = upload_to_verdict(client, stl)
                    horse = watch.reset()
                    v.update(admesh=a_wall, admesh_mb=a_mb, horse_mb=horse["hwm"],
                             growth_mb=horse["growth"], uss_mb=horse["uss"],
                             fork_mb=horse["fork_rss"])
                    rows.append(v)
                    print(f"run {i + 1}: verdict {v['total']:.2f} s ({v['status']}, upload "
                          f"{v['upload']:.2f} s, thumbnail at {v['thumb_after']:.2f} s), "
                          f"admesh {a_wall:.2f} s; work-horse VmHWM {horse['hwm']:.0f} MB "
                          f"(forked at {horse['fork_rss']:.0f} MB: grew {horse['growth']:.0f}"
                          f" MB; USS {horse['uss']:.0f} MB), admesh {a_mb:.0f} MB",
                          flush=True)
        finally:
            watch.stop()
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    med = {k: statistics.median(float(r[k]) for r in rows)
           for k in ("total", "upload", "thumb_after", "admesh", "admesh_mb", "horse_mb",
                     "growth_mb", "uss_mb", "fork_mb")}
    ratio = med["total"] / med["admesh"]
    mem_ratio = med["growth_mb"] / med["admesh_mb"]
    load = os.getloadavg()
    print(f"median upload→verdict {med['total']:.2f} s, admesh {med['admesh']:.2f} s: "
          f"{ratio:.2f}× (goal ≤ 1.5×); the analysis' own memory (horse VmHWM "
          f"{med['horse_mb']:.0f} MB − its worker's {med['fork_mb']:.0f} MB at the fork) "
          f"{med['growth_mb']:.0f} MB, USS {med['uss_mb']:.0f} MB, vs admesh "
          f"{med['admesh_mb']:.0f} MB: {mem_ratio:.2f}× (goal ≤ 2×); load average {load[0]:.1f}")
    if args.write:
        write_results(triangles, stl_mb=50, runs=args.runs, med=med, ratio=ratio,
                      mem_ratio=mem_ratio, load=load, parent_mb=watch.parent_mb)
    return 0


def write_results(triangles: int, *, stl_mb: int, runs: int, med: dict[str, float],
                  ratio: float, mem_ratio: float, load: tuple[float, float, float],
                  parent_mb: float) -> None:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    cpus = os.cpu_count()
    entry = (
        f"### {when}, commit {commit()}\n\n"
        f"`.venv/bin/python bench/bench_verdict.py --runs {runs} --write` on {platform.node()} "
        f"({cpus} CPUs, Python {platform.python_version()}), load average "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}. {triangles:,} triangles, {stl_mb} MB "
        f"binary STL; medians of {runs} interleaved runs.\n\n"
        "| measure | FabQueue | admesh | ratio |\n|---|---|---|---|\n"
        f"| upload start → analysed event | {med['total']:.2f} s | {med['admesh']:.2f} s | "
        f"{ratio:.2f}× |\n"
        f"| of which the HTTP upload | {med['upload']:.2f} s | | |\n"
        f"| thumbnail shown (after the verdict) | {med['thumb_after']:.2f} s | | |\n"
        f"| peak memory (work-horse VmHWM, shared pages counted) | {med['horse_mb']:.0f} MB | "
        f"{med['admesh_mb']:.0f} MB | {med['horse_mb'] / med['admesh_mb']:.2f}× |\n"
        f"| of which the RQ worker's RSS at the fork | {med['fork_mb']:.0f} MB "
        f"(largest seen {parent_mb:.0f}) | | |\n"
        f"| **the analysis' own memory** (VmHWM − the worker's RSS at the fork) "
        f"| {med['growth_mb']:.0f} MB | {med['admesh_mb']:.0f} MB | {mem_ratio:.2f}× |\n"
        f"| its private memory (peak USS, sampled every 20 ms) | {med['uss_mb']:.0f} MB | "
        f"{med['admesh_mb']:.0f} MB | {med['uss_mb'] / med['admesh_mb']:.2f}× |\n\n")
    text = RESULTS.read_text()
    if SECTION not in text:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n"
    head, _, rest = text.partition(SECTION)
    # newest figures first, older ones kept below them (with their commits)
    intro_end = rest.find("### ")
    next_section = rest.find("\n## ")
    if intro_end == -1 or (next_section != -1 and intro_end > next_section):
        intro_end = next_section if next_section != -1 else len(rest)
    text = head + SECTION + rest[:intro_end].rstrip("\n") + "\n\n" + entry + rest[intro_end:]
    RESULTS.write_text(text.rstrip("\n") + "\n")


if __name__ == "__main__":
    sys.exit(main())
