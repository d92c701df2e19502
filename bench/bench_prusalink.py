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


def reference_run(peer: PrusaLinkPeer, program: Path, n: int) -> float:
    started = time.monotonic()
    peer.call("PUT", f"/api/v1/files/local/ref-{n}.gcode", timeout=120,
              content=program.read_bytes(),
              headers={"Print-After-Upload": "?1", "Content-Type": "text/x.gcode"}
              ).raise_for_status()
    seen = wait_printing(peer)
    stop_print(peer)
    return seen - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args(argv)
    os.environ.setdefault("CI", "true")  # a missing peer is an error here, not a skip
    require_prusalink()
    (PEER / "runs").mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="bench-", dir=PEER / "runs"))  # not under /tmp
    with tempfile.TemporaryDirectory(prefix="fq-bench-prusalink-") as tmp:
        peer = PrusaLinkPeer(base).start()
        rig = None
        try:
            rig = HostRig(Path(tmp), {"id": "pl-bench", "driver": "prusalink",
                                      "url": peer.url, "api_key_env": "FABQUEUE_DEVICE_BENCH_PL",
                                      "build_volume_mm": (250, 210, 220)},
                          ("FABQUEUE_DEVICE_BENCH_PL", peer.api_key), jobs=args.repeats + 1,
                          lines=args.lines)
            program = rig.program
            ref, fq = rig.interleave(lambda n: reference_run(peer, program, n),
                                     lambda _job: wait_printing(peer, timeout_s=120),
                                     lambda: stop_print(peer))
        finally:
            if rig is not None:
                rig.close()
            peer.stop()
            shutil.rmtree(base, ignore_errors=True)
    size = len(gcode_program(args.lines)) / 1e6
    body = "\n".join([
        f"From `POST /api/devices/{{id}}/bed-cleared` to PrusaLink reporting `PRINTING`, "
        f"against a plain upload-and-start of the same {size:.1f} MB file ({args.lines} moves) "
        f"to the same PrusaLink, interleaved in one run, {args.repeats} runs each.",
        "",
        *table("PrusaLink 0.8.1 (our firmware responder)", ref, fq, GOAL),
        "",
        machine_line(f".venv/bin/python bench/bench_prusalink.py --repeats {args.repeats} "
                     f"--lines {args.lines} --write"),
    ])
    return report(SECTION, body, ref, fq, GOAL, write=args.write)


if __name__ == "__main__":
    raise SystemExit(main())
