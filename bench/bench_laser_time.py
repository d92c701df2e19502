"""Laser time estimate against the REAL GRBL 1.1h firmware (grbl-sim), on a few drawings.

Each drawing (../shared/samples/*.svg and generated ones) goes through FabQueue's laser chain
(SVG → toolpaths → plan → G-code with its estimate, ``fabqueue.laser.motion``) and is then
streamed by ``GrblDriver`` to the firmware on a pty; the run time is from the first line
sent to the ``ok`` of the trailing ``G4 P0``. The firmware's simulated clock runs at about
real time on an idle machine but slower on a loaded one, so a reference move of known
duration (two 50 mm trapezoids: 2.1 s) is run before each drawing and the ratio is also
given corrected by that run's slowness. Goal: estimate within ±15 % of the measured time.

A "bench" material cuts at 1500 mm/min in one pass so that a drawing takes tens of
seconds, not minutes; the estimate's model doesn't depend on the feed chosen.

Run: ``.venv/bin/python bench/bench_laser_time.py [--write]`` (``--write`` replaces the
``## Laser time estimate`` section of bench/RESULTS.md). Needs the firmware peer
(``scripts/install_grbl_peer.sh``).
"""

from __future__ import annotations

import argparse
import math
import platform
import re
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fabqueue.core.specs import LaserSpec  # noqa: E402
from fabqueue.drivers.base import Outcome  # noqa: E402
from fabqueue.drivers.grbl import GrblDriver  # noqa: E402
from fabqueue.laser.gcode import generate_gcode  # noqa: E402
from fabqueue.laser.materials import LaserMaterial, LaserOperation, Operation  # noqa: E402
from fabqueue.laser.motion import GrblMachine, total_seconds  # noqa: E402
from fabqueue.laser.paths import ColourMap, Toolpath, toolpaths_from_drawing  # noqa: E402
from fabqueue.laser.planning import plan_toolpaths  # noqa: E402
from fabqueue.laser.svg import parse_svg  # noqa: E402
from tests.grbl_fixtures import LASER_SETTINGS, GrblFirmware  # noqa: E402

RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "## Laser time estimate"
SAMPLES = REPO.parent / "shared" / "samples"
REFERENCE = ["G21 G90", "G1 X50 F3000", "G1 X0"]  # two trapezoids of 50 mm at 50 mm/s
MATERIAL = LaserMaterial(
    id="bench", name="Bench sheet", thickness_mm=3.0, sheet_mm=(600.0, 400.0),
    price_per_sheet=1.0, operations={
        Operation.CUT: LaserOperation(1500, 90, passes=1),
        Operation.SCORE: LaserOperation(3000, 40, passes=1),
        Operation.ENGRAVE: LaserOperation(4000, 30, passes=1, line_interval_mm=0.5),
    })  # fmt: skip


def laser_spec() -> LaserSpec:
    settings = {f"${k}": v for k, v in LASER_SETTINGS.items()}
    return LaserSpec(id="bench", site="bench", bed_mm=(400.0, 300.0), max_power_s=1000.0,
                     max_speed_mm_min=LASER_SETTINGS[110], settings=settings)


def svg_program(path: Path, colours: ColourMap, scale: float = 1.0) -> list[str]:
    drawing = parse_svg(path.read_bytes())
    if scale != 1.0:
        for line in drawing.polylines:
            line.points = line.points * scale
    paths = toolpaths_from_drawing(drawing, colours).paths
    return generate_gcode(plan_toolpaths(paths), MATERIAL, laser_spec(), origin=(5, 5)).lines


def generated(kind: str) -> list[str]:
    paths: list[Toolpath] = []
    if kind == "circles":  # circles of 64 segments: curves, gentle corners
        for k in range(2):
            cx, cy = 20 + 25 * (k % 4), 20 + 25 * (k // 4)
            t = np.linspace(0, 2 * math.pi, 64, endpoint=False)
            pts = np.column_stack([cx + 10 * np.cos(t), cy + 10 * np.sin(t)])
            paths.append(Toolpath(Operation.CUT, "#ff0000", pts, True))
    elif kind == "squares":  # sharp corners, straights
        for k in range(2):
            x, y = 10 + 20 * (k % 3), 10 + 20 * (k // 3)
            pts = np.array([[x, y], [x + 15, y], [x + 15, y + 15], [x, y + 15]], dtype=float)
            paths.append(Toolpath(Operation.CUT, "#ff0000", pts, True))
    elif kind == "zigzag":  # short segments: the planner's look-ahead decides
        xs = np.arange(0, 20, 0.4)
        pts = np.column_stack([xs, 10 + (np.arange(len(xs)) % 2) * 0.6])
        paths.append(Toolpath(Operation.SCORE, "#0000ff", pts, False))
    return generate_gcode(plan_toolpaths(paths), MATERIAL, laser_spec(), origin=(5, 5)).lines


def run(driver: GrblDriver, lines: list[str], timeout_s: float = 1800) -> float:
    started = time.monotonic()
    driver.start_lines(f"bench-{started}", lines)
    while (status := driver.status()).outcome is None:
        if time.monotonic() - started > timeout_s:
            raise RuntimeError("the firmware did not finish the drawing in time")
        time.sleep(0.02)
    if status.outcome is not Outcome.DONE:
        raise RuntimeError(f"the job ended {status.outcome}: {status.message}")
    elapsed = time.monotonic() - started
    driver.command("G0 X0 Y0")  # back home, outside the measurement
    driver.command("G4 P0")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="record in bench/RESULTS.md")
    parser.add_argument("--only", help="run only drawings whose name contains this")
    args = parser.parse_args(argv)
    machine = GrblMachine.from_settings(laser_spec().settings)
    drawings: dict[str, list[str]] = {  # shortest first: results are written as they come
        "generated: 2 squares of 15 mm": generated("squares"),
        "generated: zigzag 0.4 mm": generated("zigzag"),
        "generated: 2 circles": generated("circles"),
    }
    for name, file, scale in (("MIL.svg", "MIL.svg", 0.05), ("tray-easy1.svg", "tray-easy1.svg",
                                                               0.1)):
        try:
            drawings[f"{name} (black = cut, ×{scale:g})"] = svg_program(
                SAMPLES / file, ColourMap(cut_strokes=("#000000",)), scale)
        except Exception as err:  # a sample we cannot cut is reported, not fatal
            print(f"{name} skipped: {err}")
    if args.only:
        drawings = {k: v for k, v in drawings.items() if args.only in k}
    reference_s = total_seconds(REFERENCE, machine)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        firmware = GrblFirmware(Path(tmp)).start()
        driver = GrblDriver(firmware.device_path, timeout_s=30)
        try:
            driver.connect()
            for name, lines in drawings.items():
                slowness = run(driver, REFERENCE) / reference_s
                estimate = total_seconds(lines, machine)
                feed_only = _feed_only_seconds(lines)
                measured = run(driver, lines)
                rows.append((name, len(lines), estimate, feed_only, measured, slowness))
                print(f"{name}: {len(lines)} lines, estimate {estimate:.1f} s "
                      f"(distance/feed {feed_only:.1f} s), measured {measured:.1f} s, "
                      f"sim slowness {slowness:.2f}, ratio {estimate / measured:.2f}, "
                      f"corrected {estimate * slowness / measured:.2f}", flush=True)
                if args.write:
                    write_section(report(rows))
        finally:
            driver.close()
            firmware.stop()
    print(report(rows))
    if args.write:
        write_section(report(rows))
    return 0


def report(rows: list[tuple[str, int, float, float, float, float]]) -> str:
    table = ["| drawing | lines | estimate s | distance/feed s | measured s | sim clock × "
             "| estimate ÷ measured | corrected |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, n, est, feed_only, measured, slow in rows:
        table.append(f"| {name} | {n} | {est:.1f} | {feed_only:.1f} | {measured:.1f} | "
                     f"{slow:.2f} | {est / measured:.2f} | {est * slow / measured:.2f} |")
    return "\n".join([
        f"{date.today()} on {platform.node()} ({platform.machine()}), GRBL 1.1h grbl-sim, "
        f"$110/$111={LASER_SETTINGS[110]:g} mm/min, $120/$121={LASER_SETTINGS[120]:g} mm/s², "
        "$11=0.010 mm. Command: `.venv/bin/python bench/bench_laser_time.py --write`.",
        "",
        "\"sim clock ×\": how much slower than real time the firmware ran the reference move "
        "just before (1.00 = real time; the machine was shared); \"corrected\" divides that "
        "out. \"distance/feed\" is the old estimate (no acceleration), for comparison.",
        "",
        *table,
    ])


def _feed_only_seconds(lines: list[str]) -> float:
    x = y = feed = 0.0
    total = 0.0
    for line in lines:
        words = dict(re.findall(r"([XYF])(-?\d*\.?\d+)", line))
        if "F" in words:
            feed = float(words["F"])
        if "X" in words or "Y" in words:
            nx, ny = float(words.get("X", x)), float(words.get("Y", y))
            rate = LASER_SETTINGS[110] if line.startswith("G0") or not feed else feed
            total += math.hypot(nx - x, ny - y) / rate * 60
            x, y = nx, ny
    return total


def write_section(body: str) -> None:
    """Replace (or append) only our section of RESULTS.md (bench_dispatch's helper)."""
    from bench_dispatch import write_section as write  # bench/ is on sys.path when run

    write(SECTION, body)


if __name__ == "__main__":
    raise SystemExit(main())
