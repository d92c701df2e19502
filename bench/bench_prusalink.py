"""Dispatch latency on PrusaLink: from "bed cleared" to PrusaLink saying it prints.

    .venv/bin/python bench/bench_prusalink.py [--repeats 5] [--lines 20000] [--write]

The same shape as bench_hosts.py (Moonraker), kept in its own file and RESULTS.md section so
the hosts' benches merge apart. A real stack (embedded Redis, SQLite, the app in-process, a
real ``fabqueue worker``), one ``fabqueue device-worker`` at its production poll interval,
and the real PrusaLink 0.8.1 in front of our firmware responder (tests/prusalink_fixtures.py).
Each run waits until PrusaLink is IDLE again (FINISHED/STOPPED linger ~11 s, and a start
meanwhile is refused), so neither side pays that wait. Reference, interleaved in the same
run: one plain ``PUT /api/v1/files/local/…`` with ``Print-After-Upload: ?1`` of the same
file, timed the same way. Every process started here is stopped at the end.

Two paths, each with a rig of its own: pre-staged (the default: the device worker stores the
next job's file while the bed waits, and the bench runs the reference and clears the bed once
PrusaLink has that file in place) and cold (FABQUEUE_PRESTAGE=false: the file is uploaded
while the claim is decided, and started after it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench_dispatch import gcode_program, machine_line  # noqa: E402
from host_rig import HostRig, report, table  # noqa: E402

from tests.prusalink_fixtures import PEER, PrusaLinkPeer, require_prusalink  # noqa: E402

SECTION = "## Dispatch latency per printer host: PrusaLink"
GOAL = 1.3
POLL_S = 0.01


def wait_printing(peer: PrusaLinkPeer, timeout_s: float = 60.0) -> float:
    deadline = time.monotonic() + timeout_s
    while peer.state() != "PRINTING":
        if time.monotonic() > deadline:
            raise TimeoutError(f"PrusaLink stayed {peer.state()}")
        time.sleep(POLL_S)
    return time.monotonic()


def stop_print(peer: PrusaLinkPeer) -> None:
    job = peer.job()
    if job and job.get("state") in ("PRINTING", "PAUSED"):
        peer.call("DELETE", f"/api/v1/job/{job['id']}")
    peer.wait_idle(timeout=60)


def reference_run(peer: PrusaLinkPeer, program: Path, name: str) -> float:
    started = time.monotonic()
    peer.call("PUT", f"/api/v1/files/local/{name}", timeout=120,
              content=program.read_bytes(),
              headers={"Print-After-Upload": "?1", "Content-Type": "text/x.gcode"}
              ).raise_for_status()
    seen = wait_printing(peer)
    stop_print(peer)
    return seen - started


def measure(root: Path, peer: PrusaLinkPeer, lines: int, repeats: int, *, prestage: bool
            ) -> tuple[list[float], list[float]]:
    """Interleaved runs for one path: (reference s, FabQueue s) per run."""
    rig = HostRig(root, {"id": "pl-bench", "driver": "prusalink", "url": peer.url,
                         "api_key_env": "FQ_BENCH_PRUSALINK_KEY",
                         "build_volume_mm": (250, 210, 220)},
                  ("FQ_BENCH_PRUSALINK_KEY", peer.api_key), jobs=repeats + 1,
                  lines=lines, worker_env={"FABQUEUE_PRESTAGE": str(prestage).lower()})
    path = "pre" if prestage else "cold"
    try:
        return rig.interleave(
            lambda n: reference_run(peer, rig.program, f"ref-{path}-{n}.gcode"),
            lambda _job: wait_printing(peer, timeout_s=120), lambda: stop_print(peer),
            staged=(lambda job: (peer.gcodes / f"fq-{job}.gcode").exists()) if prestage
            else None, label=f"{'pre-staged' if prestage else 'cold'}, ")
    finally:
        rig.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args(argv)
    os.environ.setdefault("CI", "true")  # a missing peer is an error here, not a skip
    require_prusalink()
    runs: dict[bool, tuple[list[float], list[float]]] = {}
    (PEER / "runs").mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="bench-", dir=PEER / "runs"))  # not under /tmp
    with tempfile.TemporaryDirectory(prefix="fq-bench-prusalink-") as tmp:
        peer = PrusaLinkPeer(base).start()
        try:
            for prestage in (True, False):
                root = Path(tmp) / str(prestage)
                root.mkdir()
                runs[prestage] = measure(root, peer, args.lines, args.repeats,
                                         prestage=prestage)
        finally:
            peer.stop()
            shutil.rmtree(base, ignore_errors=True)
    size = len(gcode_program(args.lines)) / 1e6
    rows = table("PrusaLink 0.8.1 (our firmware responder), pre-staged", *runs[True], GOAL)
    rows += [r.replace(f"| ≤ {GOAL} |", "| shown |") for r in table(
        "PrusaLink 0.8.1, cold (`FABQUEUE_PRESTAGE=false`)", *runs[False], GOAL)[2:]]
    body = "\n".join([
        f"From `POST /api/devices/{{id}}/bed-cleared` to PrusaLink reporting `PRINTING`, "
        f"against a plain upload-and-start of the same {size:.1f} MB file ({args.lines} moves) "
        f"to the same PrusaLink, interleaved in one run, {args.repeats} runs each. Judged on "
        "the first row.",
        "",
        *rows,
        "",
        "Pre-staged (the default): the file was stored while the bed waited, so the "
        "bed-clear is followed by the claim's transaction and `POST` to the stored file. "
        "Cold: the file is uploaded (without `Print-After-Upload`) while the claim is "
        "decided, and started by `POST` after it. On a printer's own Wi-Fi the upload that "
        "pre-staging takes out of the way is seconds to minutes; here it is loopback. The "
        "reference's one request pays PrusaLink's own wait for its file list (it looks every "
        "0.1 s, up to 1 s, before it starts a file it just stored); staging looks with `HEAD` "
        "every 0.05 s, so even the cold path is faster than the reference here.",
        "",
        "Before staging (2026-12-02, commit 0a2ab50, one `PUT` with `Print-After-Upload` "
        "after the claim): 0.333 s vs 0.323 s, 1.03x.",
        "",
        machine_line(f".venv/bin/python bench/bench_prusalink.py --repeats {args.repeats} "
                     f"--lines {args.lines} --write"),
    ])
    ref, fq = runs[True]
    return report(SECTION, body, ref, fq, GOAL, write=args.write)


if __name__ == "__main__":
    raise SystemExit(main())
