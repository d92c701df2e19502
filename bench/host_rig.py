"""What the printer-host dispatch benches share (bench_hosts.py for Moonraker,
bench_prusalink.py, bench_bambu.py): a real stack with one host printer at a site of its own,
jobs sliced and ready for it, the machine's device worker running at its production poll
interval, the web in a process of its own (web_server.py), and the result table. Each bench
brings its peer and its bare reference client."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import build_stack, free_port, wait_for
from tests.queue.helpers import new_site

HEADER = ["| host | reference median s (min–max) | FabQueue median s (min–max) | × reference "
          "| goal |", "|---|---:|---:|---:|---|"]


class HostRig:
    def __init__(self, root: Path, device: dict[str, Any], secret: tuple[str, str], *,
                 jobs: int, lines: int, worker_env: dict[str, str] | None = None) -> None:
        from bench_dispatch import gcode_program

        (root / "stack").mkdir()
        self.stack = build_stack(root / "stack", external=False)
        self.device_id = str(device["id"])
        self.procs: list[subprocess.Popen[bytes]] = []
        try:
            self.stack.start_worker()
            site = new_site(self.stack, [{"site": "", "kind": "printer", "materials": ["PLA"],
                                          "profile": "prusa_mk4", **device}])
            self.client = self.stack.client()
            self.staff = self.stack.token(self.client, self.stack.user("staff", site))
            self.program = root / "bench.gcode"
            self.program.write_text(gcode_program(lines))
            self.jobs = [self._upload(site) for _ in range(jobs)]
            for job in self.jobs:
                wait_for(lambda j=job: self.job_status(j) == "awaiting_approval", timeout=300)
                r = self.client.post(f"/api/jobs/{job}/approve", headers=self.staff)
                assert r.status_code == 200, r.text
            for job in self.jobs:
                wait_for(lambda j=job: self.job_status(j) == "ready", timeout=300)
            log = (root / "device.log").open("wb")
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "fabqueue", "device-worker", self.device_id],
                env={**self.stack.env, secret[0]: secret[1], **(worker_env or {})}, stdout=log,
                stderr=subprocess.STDOUT))
            self.http = self._serve(root)
        except BaseException:
            self.close()
            raise

    def _serve(self, root: Path) -> httpx.Client:
        """Staff's timed requests go over HTTP to the stack's own web process (uvicorn, as
        in ``fabqueue serve``), not through the in-process TestClient (web_server.py)."""
        port = free_port()
        log = (root / "web.log").open("wb")
        self.procs.append(subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("web_server.py")), str(port)],
            env=self.stack.env, stdout=log, stderr=subprocess.STDOUT))
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=self.staff,
                            timeout=30)

        def up() -> bool:
            try:
                return http.get("/api/health").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, timeout=60, what="the bench's web server")
        return http

    def _upload(self, site: str) -> int:
        with self.program.open("rb") as f:
            r = self.client.post("/api/jobs", headers=self.staff, data={"material": "PLA",
                                 "site": site}, files={"file": (self.program.name, f)})
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    def job_status(self, job: int) -> str:
        return str(self.client.get(f"/api/jobs/{job}", headers=self.staff).json()["status"])

    def state(self) -> str:
        return str(self.http.get(f"/api/devices/{self.device_id}").json()["state"])

    def stop_and_wait(self) -> None:
        """Stop what the machine runs and wait until it asks for the bed to be cleared."""
        self.http.post(f"/api/devices/{self.device_id}/stop")
        wait_for(lambda: self.state() == "needs_bed_clear", timeout=60, interval=0.05)

    def bed_cleared(self) -> float:
        """Staff say the bed is clear; the clock's start (time.monotonic)."""
        started = time.monotonic()
        r = self.http.post(f"/api/devices/{self.device_id}/bed-cleared")
        assert r.status_code == 200, r.text
        return started

    def interleave(self, reference: Callable[[int], float], printing: Callable[[int], float],
                   stop_host: Callable[[], None], *, staged: Callable[[int], bool] | None = None,
                   settle_s: float = 0.0, label: str = "") -> tuple[list[float], list[float]]:
        """The runs of a file host's bench (bench_bambu.py, bench_prusalink.py): the warm-up
        job printed and stopped; then for each job, once its program is on the host (when
        ``staged`` says so: pre-staging), the bare reference run (``reference(n)``, its
        seconds), and FabQueue's from the bed-clear to ``printing(job)`` (the monotonic time
        the host said so). Both prints are stopped before the next run. (reference s,
        FabQueue s) per run."""
        ref: list[float] = []
        fq: list[float] = []

        def to_needs_bed_clear() -> None:
            self.stop_and_wait()
            stop_host()

        printing(self.jobs[0])  # the warm-up job
        to_needs_bed_clear()
        for n, job in enumerate(self.jobs[1:], start=1):
            if staged is not None:  # on the host before the reference: neither slows the other
                wait_for(lambda j=job: staged(j), timeout=60, interval=0.01,
                         what="the next program pre-staged")
            ref.append(reference(n))
            time.sleep(settle_s)
            started = self.bed_cleared()
            fq.append(printing(job) - started)
            to_needs_bed_clear()
            print(f"{label}run {n}: reference {ref[-1]:.3f} s, FabQueue {fq[-1]:.3f} s")
        return ref, fq

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
            proc.wait(timeout=15)
        self.stack.stop_workers()
        if self.stack.redis_owner is not None:
            self.stack.redis_owner.stop()


def ratio(ref: list[float], fq: list[float]) -> float:
    return statistics.median(fq) / statistics.median(ref)


def table(label: str, ref: list[float], fq: list[float], goal: float) -> list[str]:
    return [*HEADER,
            f"| {label} | {statistics.median(ref):.3f} ({min(ref):.3f}–{max(ref):.3f}) | "
            f"{statistics.median(fq):.3f} ({min(fq):.3f}–{max(fq):.3f}) | **{ratio(ref, fq):.2f}** "
            f"| ≤ {goal} |"]


def report(section: str, body: str, ref: list[float], fq: list[float], goal: float, *,
           write: bool) -> int:
    """Print the section, record it in RESULTS.md when asked; the exit code is the verdict."""
    from bench_dispatch import write_section

    print(body)
    if write:
        write_section(section, body)
    return 0 if ratio(ref, fq) <= goal else 1
