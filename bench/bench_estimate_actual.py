"""Estimate vs actual: pre-slicing estimate, PrusaSlicer's, and a Virtual Printer's print time.

    .venv/bin/python bench/bench_estimate_actual.py [--quality normal] [--cap 60] [--write]

For each printable sample in ../shared/samples (bench_estimates.py's list, scaling and
comparison), the sliced G-code is printed on a real OctoPrint 1.11 Virtual Printer (heating
returns at once, ``M220 S1000``), and OctoPrint's own ``prints.last.printTime`` is read. The
Virtual Printer runs moves 10× faster than written and ``M220 S1000`` another 10×, so the raw
time × 100 is the "real-time equivalent"; G4 dwells run in real time and are not scaled.
A print still running after ``--cap`` seconds is cancelled and its time extrapolated from the
completion OctoPrint reports (bytes sent), marked as such.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench_dispatch import Octo, machine_line, write_section
from bench_estimates import available_samples, compare, scaled_stl

from fabqueue.slicing.profiles import default_profiles_folder, load_profiles
from tests.octoprint_fixtures import OctoPrintInstance

SECTION = "## Estimate vs actual (Virtual Printer)"
SPEEDUP = 100  # the Virtual Printer's fixed ×10, and M220 S1000's ×10
DWELL_RE = re.compile(r"^G4\s+(?:[^;]*\s)?([SP])(\d+(?:\.\d*)?)", re.MULTILINE)


@dataclass(frozen=True)
class Actual:
    raw_s: float
    dwell_s: float
    completion: float  # % of the file sent when the time was read (100 unless capped)

    @property
    def extrapolated(self) -> bool:
        return self.completion < 100

    @property
    def real_time_s(self) -> float:
        """Moves × 100 (both speed-ups undone); dwells were already real time."""
        return (self.raw_s - self.dwell_s) * SPEEDUP + self.dwell_s


def dwell_seconds(gcode: str) -> float:
    """Seconds of ``G4 S…`` / ``G4 P…`` (milliseconds) in a program."""
    return sum(float(v) if unit == "S" else float(v) / 1000
               for unit, v in DWELL_RE.findall(gcode))


def print_on(octo: Octo, program: Path, cap_s: float) -> Actual:
    name = program.name
    dwell = dwell_seconds(program.read_text())
    uploaded = time.time()
    octo.upload_and_print(program, name)
    deadline = time.monotonic() + cap_s
    while time.monotonic() < deadline:
        print_s, ended = octo.last_print(name)
        if ended is not None and ended >= uploaded and octo.state() == "Operational":
            return Actual(print_s or 0.0, dwell, 100.0)
        time.sleep(0.5)
    job = octo.session.get(f"{octo.url}/api/job", timeout=10).json()
    progress = job.get("progress") or {}
    done = float(progress.get("completion") or 0.0)
    elapsed = float(progress.get("printTime") or cap_s)
    octo.cancel()
    octo.wait_idle()
    # the whole file at the rate so far; dwells (start G-code) counted once
    raw = dwell + (elapsed - dwell) * 100 / max(done, 0.1)
    return Actual(raw, dwell, done)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--printer", default="prusa_mk4")
    parser.add_argument("--material", default="PLA")
    parser.add_argument("--quality", default="normal")
    parser.add_argument("--cap", type=float, default=60.0,
                        help="longest Virtual Printer time per sample (s) before extrapolating")
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args(argv)
    samples = available_samples()
    if not samples:
        print("no samples in ../shared/samples", file=sys.stderr)
        return 1
    started = time.monotonic()
    profiles = load_profiles(default_profiles_folder())
    rows = [
        "| sample | pre-slicing estimate min | PrusaSlicer min | G-code lines | Virtual Printer "
        "raw s | real-time equivalent min | equivalent ÷ PrusaSlicer | pre-slicing ÷ "
        "equivalent |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory(prefix="fq-bench-") as tmp:
        folder = Path(tmp)
        instance = OctoPrintInstance(folder / "octoprint")
        try:
            instance.launch()
            models = [scaled_stl(name, scale, folder) for name, scale, _why in samples]
            instance.ready()
            octo = Octo(instance)
            for model in models:
                c = compare(model, profiles, args.printer, args.material, args.quality, folder)
                program = folder / f"{model.stem}-{args.quality}.gcode"
                lines = program.read_text().count("\n")
                actual = print_on(octo, program, args.cap)
                mark = f" (extrapolated from {actual.completion:.0f}%)" if actual.extrapolated \
                    else ""
                rows.append(
                    f"| {c.name} | {c.estimate_s / 60:.0f} | {c.slicer_s / 60:.0f} | {lines} "
                    f"| {actual.raw_s:.1f}{mark} | {actual.real_time_s / 60:.0f} "
                    f"| {actual.real_time_s / c.slicer_s:.2f} "
                    f"| {c.estimate_s / actual.real_time_s:.2f} |")
                print(rows[-1], flush=True)
        finally:
            instance.stop()
    command = ".venv/bin/python bench/bench_estimate_actual.py --write"
    body = "\n".join([
        f"Per sample ({args.printer} / {args.material} / {args.quality}): the pre-slicing "
        "estimate (`fabqueue.core.estimates.estimate_print`, as in bench_estimates.py), "
        "PrusaSlicer 2.5's own estimate, and the time an OctoPrint 1.11 Virtual Printer took "
        "to print the sliced G-code (OctoPrint's `prints.last.printTime`). The Virtual Printer "
        "runs every move 10× faster than written and `M220 S1000` makes it 10× faster again: "
        "\"real-time equivalent\" = (raw − G4 dwells) × 100 + dwells. Heating is instant "
        "(ambient 250 °C). The Virtual Printer is not a motion model: no acceleration or "
        "jerk (PrusaSlicer's estimate includes them), a move's time is its largest *positive* "
        "axis change ÷ feed rate (moves toward lower coordinates take no time, a diagonal "
        "costs only its longest leg), extrusion is timed oddly (M83 is ignored, so relative E "
        "values are read as positions, and E runs only 10× fast: M220 leaves it alone; small "
        "parts with many retractions come out slow), and OctoPrint's serial line handling "
        "(~2 ms a line here) is a floor. So the "
        "equivalent is not a real printer's time: on larger parts it runs low (no acceleration, "
        "free moves back), on small parts full of retractions it runs high. "
        f"Prints longer than {args.cap:g} s of Virtual Printer time are cancelled there and "
        "extrapolated from OctoPrint's completion (share of bytes sent).",
        "",
        machine_line(command) + f"; took {time.monotonic() - started:.0f} s.",
        "",
        *rows,
    ])
    print(body)
    if args.write:
        write_section(SECTION, body)
        print("\nwritten to bench/RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
