"""Pre-slicing estimates against PrusaSlicer, per sample model.

    .venv/bin/python bench/bench_estimates.py [--quality normal] [--write]

For each printable sample in ../shared/samples (scaled to millimetres where drawn in inches,
written to a temporary STL so both sides read the same mesh), compares
the estimate FabQueue shows at upload (``fabqueue.analysis.mesh.analyse_mesh``, which
measures the mesh and calls ``fabqueue.core.estimates.estimate_print``) with PrusaSlicer 2.5's
own figures for the same
profile (prusa_mk4 / PLA). ``--write`` puts the table in bench/RESULTS.md under
"## Estimate accuracy" (replacing only that section, and keeping the figures it replaces, with
their commit, under "Earlier figures"). tests/slicing/test_estimate_accuracy.py asserts the
tolerances with the same functions. The time model has no constant fitted to these samples
(each term is a PrusaSlicer rule, read off its G-code per feature); HELD_OUT stayed out of
that reading and are reported apart.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import trimesh

from fabqueue.analysis.mesh import analyse_mesh
from fabqueue.core.specs import MaterialSpec
from fabqueue.slicing.profiles import ProfileSet, default_profiles_folder, load_profiles
from fabqueue.slicing.prusaslicer import slice_model

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "samples"
RESULTS = REPO / "bench" / "RESULTS.md"
SECTION = "## Estimate accuracy"
# Asserted: what the model reaches on every sample today (issue 20): grams within 5% since
# bodies pushed into one another count as their union (rabbit, teapot) and grams are read
# from filament lengths (multibody's 0.15 against 0.16 g were both rounded to 0.01 g).
TOLERANCE = 0.05  # grams
TIME_TOLERANCE = 0.10  # seconds
GRAMS_TARGET, TIME_TARGET = 0.05, 0.10  # issue 20's aim, counted in the table
# Left out of every constant the time model fits or reads off the G-code (chosen up front).
HELD_OUT = ("teapot", "idler_riser")
EARLIER = "### Earlier figures"

# (file, scale to mm, why). Left out: counter.unitsmm and 1002_tray_bottom (larger than any
# bed), soup/empty (not meshes), pyramids.3mf (many separate objects).
PRINTABLE: tuple[tuple[str, float, str], ...] = (
    ("20mm-xyz-cube.stl", 1.0, "calibration cube"),
    ("busted.STL", 1.0, "small organic part"),
    ("multibody.stl", 25.4, "two bodies, inches"),
    ("featuretype.STL", 25.4, "holes and pockets, inches"),
    ("idler_riser.STL", 25.4, "bracket, inches"),
    ("rabbit.obj", 25.4, "organic, not watertight"),
    ("teapot.stl", 1.0, "organic, not watertight, 4 shells"),
)


@dataclass(frozen=True)
class Comparison:
    name: str
    estimate_g: float
    slicer_g: float
    estimate_s: float
    slicer_s: float
    estimate_ms: float

    @property
    def grams_error(self) -> float:
        return self.estimate_g / self.slicer_g - 1

    @property
    def seconds_error(self) -> float:
        return self.estimate_s / self.slicer_s - 1


def available_samples() -> list[tuple[str, float, str]]:
    return [entry for entry in PRINTABLE if (SAMPLES / entry[0]).is_file()]


def scaled_stl(name: str, scale: float, folder: Path) -> Path:
    """The sample as a millimetre STL (PrusaSlicer 2.5 can't read rabbit.obj's n-gons)."""
    mesh = trimesh.load(SAMPLES / name, force="mesh")
    mesh.apply_scale(scale)
    path = folder / (Path(name).stem + ".stl")
    mesh.export(path)
    return path


def compare(model: Path, profiles: ProfileSet, printer: str, material: str, quality: str,
            out_dir: Path) -> Comparison:
    """FabQueue's upload analysis (reading, measuring, estimating) against PrusaSlicer."""
    density, price = profiles.material_props(material)
    params = profiles.print_params(printer, material, quality)
    spec = MaterialSpec(material, "filament", density_g_cm3=density, price_per_kg=price)
    started = time.perf_counter()
    report = analyse_mesh(model, model.suffix, material=spec, params=params, printers=[])
    estimate_ms = (time.perf_counter() - started) * 1000
    if not report["ok"]:
        raise ValueError(f"{model.name} was refused: {report['errors']}")
    sliced = slice_model(model, out_dir / f"{model.stem}-{quality}.gcode",
                         profiles.profile_files(printer, material, quality))
    # Grams from filament length on both sides: PrusaSlicer writes "filament used [g]" and
    # "[cm3]" to 0.01 but "[mm]" to 0.01 mm (multibody: 0.16 g is 53.30 mm, 0.159 g), and
    # FabQueue's metres (to 1 mm) carry more digits than its grams (to 0.01 g).
    grams_per_mm = math.pi * (params.filament_diameter_mm / 2) ** 2 * density / 1000
    return Comparison(model.stem, report["filament_m"] * 1000 * grams_per_mm,
                      sliced.filament_mm * grams_per_mm,
                      report["estimated_seconds"], sliced.estimated_seconds, estimate_ms)


def table(rows: list[Comparison]) -> str:
    lines = [
        "| sample | estimate g | PrusaSlicer g | error | estimate min | PrusaSlicer min | error "
        "| estimate ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        name = f"{r.name} (held out)" if r.name in HELD_OUT else r.name
        lines.append(
            f"| {name} | {r.estimate_g:.3f} | {r.slicer_g:.3f} | {r.grams_error:+.1%} "
            f"| {r.estimate_s / 60:.0f} | {r.slicer_s / 60:.0f} | {r.seconds_error:+.1%} "
            f"| {r.estimate_ms:.0f} |"
        )
    return "\n".join(lines)


def commit() -> str:
    """The checkout the figures are of (with "+" when it has uncommitted changes)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              check=False).stdout.strip()
    dirty = git("status", "--porcelain", "--", "fabqueue", "bench")
    return (git("rev-parse", "--short", "HEAD") or "unknown") + ("+" if dirty else "")


def earlier_figures(old_section: str) -> str:
    """The section being replaced, as the first of its earlier figures (issue 20: keep them)."""
    current, _, earlier = old_section.partition(EARLIER)
    tables = current[current.find("### "):].strip() if "### " in current else ""
    if not tables:
        return earlier.strip()
    made = re.search(r"Command: `[^`]*` \(([^)]*)\)", current)
    when = made.group(1) if made else "earlier"
    tables = re.sub(r"^### ", "#### ", tables, flags=re.MULTILINE)
    return f"Replaced figures ({when}):\n\n{tables}\n\n{earlier.strip()}".strip()


def write_section(body: str) -> None:
    """Replace (or append) only our section of RESULTS.md; other sections are others'."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    found = pattern.search(text)
    kept = earlier_figures(found.group(0)) if found else ""
    section = f"{SECTION}\n\n{body.strip()}\n\n"
    if kept:
        section += f"{EARLIER}\n\n{kept}\n\n"
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text.rstrip("\n") + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--printer", default="prusa_mk4")
    parser.add_argument("--material", default="PLA")
    parser.add_argument("--quality", action="append", help="default: normal and fine")
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args(argv)
    samples = available_samples()
    if not samples:
        print(f"no samples in {SAMPLES}", file=sys.stderr)
        return 1
    profiles = load_profiles(default_profiles_folder())
    qualities = args.quality or ["normal", "fine"]
    parts = [
        "Pre-slicing estimate as shown at upload (`fabqueue.analysis.mesh.analyse_mesh`: "
        "volume, side area, area per slope, bodies → `estimate_print`) against PrusaSlicer "
        "2.5's own figures for the same "
        f"profile ({args.printer} / {args.material}). Asserted in "
        f"tests/slicing/test_estimate_accuracy.py: ±{TOLERANCE:.0%} on grams, "
        f"±{TIME_TOLERANCE:.0%} on time; issue 20 aims at ±{GRAMS_TARGET:.0%} and "
        f"±{TIME_TARGET:.0%} (counted per table). Held out of the time model's constants: "
        f"{', '.join(HELD_OUT)}.",
        "",
        f"Command: `.venv/bin/python bench/bench_estimates.py --write` "
        f"({time.strftime('%Y-%m-%d')}, commit {commit()}, {platform.machine()}, Python "
        f"{platform.python_version()}, load average {{load}} at the end: a shared machine).",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models = [(scaled_stl(name, scale, folder), why) for name, scale, why in samples]
        for quality in qualities:
            rows = [compare(model, profiles, args.printer, args.material, quality, folder)
                    for model, _ in models]
            grams = sum(abs(r.grams_error) <= GRAMS_TARGET for r in rows)
            seconds = sum(abs(r.seconds_error) <= TIME_TARGET for r in rows)
            held = [r for r in rows if r.name in HELD_OUT]
            parts += ["", f"### {quality} ({grams}/{len(rows)} within ±{GRAMS_TARGET:.0%} on "
                      f"grams, {seconds}/{len(rows)} within ±{TIME_TARGET:.0%} on time)",
                      "", table(rows), "",
                      "Held out: " + ", ".join(f"{r.name} time {r.seconds_error:+.1%}, grams "
                                               f"{r.grams_error:+.1%}" for r in held) + "."]
    body = "\n".join(parts).replace("{load}", f"{os.getloadavg()[0]:.1f}")
    print(body)
    if args.write:
        write_section(body)
        print(f"\nwritten to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
