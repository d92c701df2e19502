"""Pre-slicing estimates against PrusaSlicer, per sample model.

    .venv/bin/python bench/bench_estimates.py [--quality normal] [--write]

For each printable sample in ../shared/samples (scaled to millimetres where drawn in inches,
written to a temporary STL so both sides read the same mesh), compares
the estimate FabQueue shows at upload (``fabqueue.analysis.mesh.analyse_mesh``, which
measures the mesh and calls ``fabqueue.core.estimates.estimate_print``) with PrusaSlicer 2.5's
own figures for the same
profile (prusa_mk4 / PLA). ``--write`` puts the table in bench/RESULTS.md under
"## Estimate accuracy" (replacing only that section). tests/slicing/test_estimate_accuracy.py
asserts the ±15 % on grams with the same functions.
"""

from __future__ import annotations

import argparse
import platform
import re
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
TOLERANCE = 0.15

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
    return Comparison(model.stem, report["material_g"], sliced.filament_g or 0.0,
                      report["estimated_seconds"], sliced.estimated_seconds, estimate_ms)


def table(rows: list[Comparison]) -> str:
    lines = [
        "| sample | estimate g | PrusaSlicer g | error | estimate min | PrusaSlicer min | error "
        "| estimate ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.name} | {r.estimate_g:.2f} | {r.slicer_g:.2f} | {r.grams_error:+.1%} "
            f"| {r.estimate_s / 60:.0f} | {r.slicer_s / 60:.0f} | {r.seconds_error:+.1%} "
            f"| {r.estimate_ms:.0f} |"
        )
    return "\n".join(lines)


def write_section(body: str) -> None:
    """Replace (or append) only our section of RESULTS.md; other sections are others'."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    section = f"{SECTION}\n\n{body.strip()}\n\n"
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
        f"profile ({args.printer} / {args.material}); target ±{TOLERANCE:.0%} on grams "
        "(asserted in tests/slicing/test_estimate_accuracy.py). Time is reported, not asserted.",
        "",
        f"Command: `.venv/bin/python bench/bench_estimates.py --write` "
        f"({time.strftime('%Y-%m-%d')}, {platform.machine()}, Python "
        f"{platform.python_version()}).",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models = [(scaled_stl(name, scale, folder), why) for name, scale, why in samples]
        for quality in qualities:
            rows = [compare(model, profiles, args.printer, args.material, quality, folder)
                    for model, _ in models]
            within = sum(abs(r.grams_error) <= TOLERANCE for r in rows)
            parts += ["", f"### {quality} ({within}/{len(rows)} within ±{TOLERANCE:.0%} on grams)",
                      "", table(rows)]
    body = "\n".join(parts)
    print(body)
    if args.write:
        write_section(body)
        print(f"\nwritten to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
