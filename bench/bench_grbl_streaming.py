"""GRBL streaming: character counting vs send-and-wait on a paced USB serial link.

The GRBL 1.1h emulator runs in its own process (``python -m
fabqueue.simulators.grbl_emulator``) pacing bytes at 115200 baud (11,520 bytes/s each way)
and delaying every answer by 4 ms (a USB adapter's latency timer). A short-segment
engraving program (0.1-0.5 mm moves) is streamed by ``GrblDriver`` in both modes; each
job's wall time is compared with its ideal: the larger of its pure motion time and its
bytes ÷ 11,520 bytes/s. Goal: character counting ≤ 1.1 × ideal.

Run: ``.venv/bin/python bench/bench_grbl_streaming.py [--lines 5000] [--write]``
(``--write`` replaces the ``## GRBL streaming`` section of bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from fabqueue.drivers.base import Outcome
from fabqueue.drivers.grbl import END_SYNC, GrblDriver, prepare_lines

BAUD = 115200
LATENCY_S = 0.004
BYTES_PER_S = BAUD / 10
FEED = 4800.0  # mm/min: a typical diode-laser engraving feed (80 mm/s)
RAPID = 6000.0  # the emulator's $110/$111
RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "## GRBL streaming"


def engraving(lines: int, seed: int = 7) -> list[str]:
    """Rows of short segments with varying power, as a greyscale engraving produces."""
    rng = random.Random(seed)
    out = ["G21 G90", "M4 S0", "G0 X10 Y10", f"G1 F{FEED:g}"]
    x, y, direction = 10.0, 10.0, 1
    while len(out) < lines - 1:
        step = rng.uniform(0.1, 0.5)
        if not 10 <= x + direction * step <= 110:
            y += 0.1
            direction = -direction
            out.append(f"G0 Y{y:.3f}")
            continue
        x += direction * step
        out.append(f"G1 X{x:.3f} S{rng.randrange(100, 1000)}")
    out.append("M5")
    return out


def ideal_seconds(program: list[str]) -> tuple[float, float, int]:
    """(motion seconds at the programmed feeds, link seconds, bytes sent)."""
    pos = [0.0, 0.0]
    motion = 0.0
    for line in program:
        words = {w[0]: float(w[1:]) for w in line.split() if w[0] in "XY"}
        if not words:
            continue
        new = [words.get("X", pos[0]), words.get("Y", pos[1])]
        if line.startswith("G0"):  # each axis at its own max rate, as GRBL limits rapids
            motion += max(abs(a - b) for a, b in zip(pos, new, strict=True)) / RAPID * 60
        else:
            motion += math.dist(pos, new) / FEED * 60
        pos = new
    sent = sum(line.size for line in prepare_lines(program)) + len(END_SYNC) + 1
    return motion, sent / BYTES_PER_S, sent


def start_emulator(min_block_s: float, link: Path) -> subprocess.Popen[str]:
    command = [
        sys.executable, "-m", "fabqueue.simulators.grbl_emulator", "--link", str(link),
        "--baud", str(BAUD), "--latency", str(LATENCY_S), "--min-block-s", str(min_block_s),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    process.stdout.readline()  # "GRBL 1.1h emulator on /dev/pts/N": the link exists
    return process


def run(program: list[str], mode: str, min_block_s: float) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        link = Path(tmp) / "laser"
        emulator = start_emulator(min_block_s, link)
        try:
            driver = GrblDriver(str(link), streaming=mode)  # type: ignore[arg-type]
            driver.connect()
            started = time.monotonic()
            driver.start_lines(mode, program)
            while (status := driver.status()).outcome is None:
                time.sleep(0.005)
            wall = time.monotonic() - started
            driver.close()
            assert status.outcome is Outcome.DONE, status.message
            return wall
        finally:
            emulator.terminate()
            emulator.wait(timeout=5)


def table(program: list[str], results: dict[str, float], min_block_s: float) -> str:
    motion, link_s, sent = ideal_seconds(program)
    ideal = max(motion, link_s)
    rows = [
        f"Program: {len(program)} lines, 0.1–0.5 mm moves at F{FEED:g}, {sent} bytes sent. "
        f"Ideal = max(motion {motion:.2f} s, bytes ÷ {BYTES_PER_S:.0f} B/s = {link_s:.2f} s) "
        f"= {ideal:.2f} s. Emulator: {BAUD} baud both ways, {LATENCY_S * 1000:g} ms per "
        f"answer, 15-block planner, constant-speed moves, min block time {min_block_s:g} s "
        "(an ATmega328p needs ~5 ms per block: `--min-block-s 0.005` models it; 0 keeps "
        "the comparison with the ideal exact).",
        "",
        "| streaming | wall s | × ideal | goal |",
        "|---|---:|---:|---|",
    ]
    for mode, wall in results.items():
        goal = "≤ 1.1" if mode == "char_count" else ""
        rows.append(f"| {mode} | {wall:.2f} | {wall / ideal:.3f} | {goal} |")
    return "\n".join(rows)


def write_section(body: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else ""
    section = f"{SECTION}\n\n{body}\n"
    if SECTION in text:
        start = text.index(SECTION)
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + (text[end + 1 :] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section
    RESULTS.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=5000)
    parser.add_argument("--min-block-s", type=float, default=0.0)
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    program = engraving(args.lines)
    results = {mode: run(program, mode, args.min_block_s) for mode in ("char_count", "send_wait")}
    body = table(program, results, args.min_block_s)
    command = "`.venv/bin/python bench/bench_grbl_streaming.py --write`"
    body = (
        f"Command: {command} ({date.today()}, {platform.machine()}, Python "
        f"{platform.python_version()}; the emulator runs in its own process).\n\n{body}"
    )
    print(body)
    if args.write:
        write_section(body)


if __name__ == "__main__":
    main()
