"""Benchmark: analysing a ~1M-triangle binary STL, against admesh, PrusaSlicer and trimesh.

Run from the repository root:
    .venv/bin/python bench/bench_mesh.py [--runs 3] [--no-write] [--no-estimates]
    .venv/bin/python bench/bench_mesh.py --estimates-only   # the shapes' table, printed only

Generates four geodesic spheres (1,003,520 triangles, 50 MB) in a temp folder, runs every
tool in its own subprocess (through a small wrapper that reports the child's wall and CPU
time and peak RSS from getrusage), keeps the best of --runs, prints a table with ratios to
admesh; then slices six simple shapes with PrusaSlicer under two profiles and compares its
filament grams and time with ``estimate_print``. Writes both under "## Mesh analysis" in
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fabqueue.core.estimates import PrintParams

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "RESULTS.md"
SECTION = "## Mesh analysis"
FREQUENCY = 112  # 20 * 112² = 250,880 triangles per sphere


def icosahedron() -> tuple[np.ndarray, np.ndarray]:
    t = (1 + 5**0.5) / 2
    vertices = np.array(
        [[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t],
         [0, -1, -t], [0, 1, -t], [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]], dtype=float)
    faces = np.array(
        [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4],
         [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8],
         [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]])
    return vertices, faces


def geodesic_sphere(
    frequency: int, radius: float, centre: tuple[float, float, float]
) -> np.ndarray:
    """(20·f², 3, 3) float32 triangles, outward wound, with bit-identical shared corners.

    A lattice point is i·A + j·B + k·C; on an edge one weight is 0, and the remaining
    two-term sum is the same in both neighbouring faces (addition commutes), so the sphere is
    exactly closed without any merging.
    """
    vertices, faces = icosahedron()
    f = frequency
    i, j = np.meshgrid(np.arange(f + 1), np.arange(f + 1), indexing="ij")
    a, b, c = (vertices[faces[:, n]][:, None, None, :] for n in range(3))
    k = f - i - j
    points = (i[..., None] * a + j[..., None] * b) + k[..., None] * c  # (20, f+1, f+1, 3)
    points /= np.linalg.norm(points, axis=-1, keepdims=True)
    points = points * radius + np.array(centre)
    up_i, up_j = np.nonzero((i + j) <= f - 1)
    down_i, down_j = np.nonzero((i + j) <= f - 2)
    up = np.stack([points[:, up_i, up_j], points[:, up_i + 1, up_j], points[:, up_i, up_j + 1]],
                  axis=2)
    down = np.stack([points[:, down_i + 1, down_j], points[:, down_i + 1, down_j + 1],
                     points[:, down_i, down_j + 1]], axis=2)
    return np.concatenate([up.reshape(-1, 3, 3), down.reshape(-1, 3, 3)]).astype(np.float32)


def write_test_stl(path: Path) -> int:
    spheres = [geodesic_sphere(FREQUENCY, 40.0, (x, y, 40.0))
               for x in (-45.0, 45.0) for y in (-45.0, 45.0)]
    triangles = np.concatenate(spheres)
    records = np.zeros(len(triangles),
                       dtype=[("normal", "<f4", (3,)), ("v", "<f4", (3, 3)), ("a", "<u2")])
    records["v"] = triangles
    normal = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    records["normal"] = normal / np.linalg.norm(normal, axis=1, keepdims=True)
    with path.open("wb") as f:
        f.write(b"fabqueue bench: four geodesic spheres".ljust(80, b" "))
        f.write(np.uint32(len(triangles)).tobytes())
        records.tofile(f)
    return len(triangles)


def measure(command: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Run one command in a fresh wrapper process; return wall and CPU seconds, peak RSS."""
    wrapper = (
        "import json, resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "done = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)\n"
        "wall = time.perf_counter() - t\n"
        "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(json.dumps({'seconds': wall, 'rss_mb': usage.ru_maxrss / 1024,"
        " 'cpu': usage.ru_utime + usage.ru_stime, 'rc': done.returncode,"
        " 'tail': done.stdout.decode(errors='replace')[-300:]}))\n"
    )
    out = subprocess.run([sys.executable, "-c", wrapper, *command], capture_output=True,
                         check=True, text=True, env={**os.environ, **(env or {})})
    return json.loads(out.stdout)


TRIMESH = (
    "import sys, trimesh\n"
    "m = trimesh.load(sys.argv[1])\n"
    "print(m.is_watertight, m.volume, len(m.split(only_watertight=False)))\n"
)
OURS = (
    "import sys\n"
    "from pathlib import Path\n"
    "from fabqueue.analysis.mesh import analyse_mesh\n"
    "from fabqueue.core.estimates import PrintParams\n"
    "from fabqueue.core.specs import MaterialSpec, PrinterSpec\n"
    "r = analyse_mesh(Path(sys.argv[1]), 'stl', params=PrintParams(),\n"
    "    material=MaterialSpec('PLA', 'filament', density_g_cm3=1.24, price_per_kg=25),\n"
    "    printers=[PrinterSpec('mk3', 'lab', (250, 210, 220), ('PLA',))],\n"
    "    thumbnail=Path(sys.argv[2]) if len(sys.argv) > 2 else None)\n"
    "print(r['ok'], r['triangles'], r['bodies'], r['watertight'], r['volume_cm3'], r['fits'],"
    " r['material_g'])\n"
)


def tools(stl: Path, png: Path) -> dict[str, tuple[list[str], dict[str, str] | None]]:
    py = sys.executable
    return {
        "admesh": (["admesh", str(stl)], None),
        "prusa-slicer --info": (["prusa-slicer", "--info", str(stl)], None),
        "trimesh load + watertight/volume/split": ([py, "-c", TRIMESH, str(stl)], None),
        "fabqueue analyse_mesh": ([py, "-c", OURS, str(stl)], None),
        "fabqueue analyse_mesh + thumbnail": ([py, "-c", OURS, str(stl), str(png)], None),
    }


SHAPES = {
    "box 20³": ("box", {"extents": (20, 20, 20)}),
    "plate 60×40×10": ("box", {"extents": (60, 40, 10)}),
    "box 50³": ("box", {"extents": (50, 50, 50)}),
    "cylinder r15 h30": ("cylinder", {"radius": 15, "height": 30, "sections": 96}),
    "sphere r20": ("icosphere", {"subdivisions": 4, "radius": 20}),
    "tube r10–20 h40": ("annulus", {"r_min": 10, "r_max": 20, "height": 40, "sections": 96}),
}
# PrusaSlicer's own motion defaults, which it applies here (nothing on its command line sets
# them): every acceleration 1500 mm/s² (its extruding limit), jerk 10 mm/s. Without them the
# estimate would model the MK4's slower 800-1250 / 8 and run long against this reference.
MOTION = {"perimeter_acceleration": 1500.0, "infill_acceleration": 1500.0,
          "default_acceleration": 1500.0, "first_layer_acceleration": 1500.0,
          "jerk_mm_s": 10.0}
PROFILES = {
    "defaults (0.2 mm, 2 perimeters, 15%)": {**MOTION},
    "0.3 mm, 3 perimeters, 40%": {**MOTION, "layer_height_mm": 0.3, "first_layer_height_mm": 0.3,
                                   "perimeters": 3, "top_solid_layers": 4,
                                   "bottom_solid_layers": 3, "fill_density": 0.4},
}


def slicer_args(params: PrintParams) -> list[str]:
    p = params
    return [
        "--layer-height", str(p.layer_height_mm), "--first-layer-height",
        str(p.first_layer_height_mm), "--nozzle-diameter", str(p.nozzle_diameter_mm),
        "--extrusion-width", str(p.extrusion_width_mm), "--perimeters", str(p.perimeters),
        "--top-solid-layers", str(p.top_solid_layers), "--bottom-solid-layers",
        str(p.bottom_solid_layers), "--fill-density", f"{p.fill_density * 100:.0f}%",
        "--filament-diameter", str(p.filament_diameter_mm), "--filament-density", "1.24",
        "--perimeter-speed", str(p.perimeter_speed_mm_s), "--external-perimeter-speed",
        str(p.external_perimeter_speed_mm_s), "--infill-speed", str(p.infill_speed_mm_s),
        "--solid-infill-speed", str(p.solid_infill_speed_mm_s), "--top-solid-infill-speed",
        str(p.top_solid_infill_speed_mm_s), "--travel-speed", str(p.travel_speed_mm_s),
        "--first-layer-speed", str(p.first_layer_speed_mm_s), "--skirts", "0",
        "--bed-shape", "0x0,250x0,250x210,0x210", "--center", "125,105",
    ]


def compare_estimates(folder: Path) -> str:
    """Our closed-form estimate against PrusaSlicer's G-code totals on simple shapes."""
    import re

    import trimesh

    from fabqueue.analysis.mesh import analyse_mesh

    lines = ["| shape | profile | PrusaSlicer g | ours g | Δ | PrusaSlicer time | ours | Δ |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for profile, overrides in PROFILES.items():
        params = PrintParams(**overrides)
        for shape, (maker, kwargs) in SHAPES.items():
            stl, gcode = folder / "shape.stl", folder / "shape.gcode"
            getattr(trimesh.creation, maker)(**kwargs).export(stl)
            subprocess.run(["prusa-slicer", "--export-gcode", *slicer_args(params), "-o",
                            str(gcode), str(stl)], check=True, capture_output=True)
            text = gcode.read_text(errors="replace")
            grams = float(re.search(r"; filament used \[g\] = ([\d.]+)", text).group(1))
            clock = re.search(r"estimated printing time \(normal mode\) = (.*)", text).group(1)
            seconds = sum(int(v) * {"d": 86400, "h": 3600, "m": 60, "s": 1}[u]
                          for v, u in re.findall(r"(\d+)([dhms])", clock))
            ours = analyse_mesh(stl, "stl", material=None, params=params, printers=())
            lines.append(
                f"| {shape} | {profile} | {grams:.2f} | {ours['material_g']:.2f} "
                f"| {ours['material_g'] / grams - 1:+.0%} | {seconds / 60:.0f} min "
                f"| {ours['estimated_seconds'] / 60:.0f} min "
                f"| {ours['estimated_seconds'] / seconds - 1:+.0%} |")
            print(lines[-1])
    return "\n".join(lines)


def table(results: dict[str, dict[str, float]]) -> str:
    base, base_cpu = results["admesh"]["seconds"], results["admesh"]["cpu"]
    lines = ["| tool | wall s (best) | × admesh | CPU s (best) | × admesh | peak RSS MB |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['seconds']:.2f} | {r['seconds'] / base:.2f}× "
                     f"| {r['cpu']:.2f} | {r['cpu'] / base_cpu:.2f}× | {r['rss_mb']:.0f} |")
    return "\n".join(lines)


EARLIER = "### Earlier runs"
ESTIMATES = "### Estimate against PrusaSlicer"


def write_results(main: str, estimates: str = "") -> None:
    """Put ``main`` (the timing table) at the top of the section; the figures it replaces go
    first under "### Earlier runs" (older ones kept below them), the estimate table is
    replaced only when ``estimates`` is given, other subsections stay as they are."""
    existing = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n"
    before, body, after = existing, "", ""
    if SECTION in existing:
        before, rest = existing.split(SECTION, 1)
        cut = rest.find("\n## ")
        body, after = (rest, "") if cut == -1 else (rest[:cut], rest[cut:])
    old_main, subsections = _split_subsections(body)
    earlier = subsections.pop(EARLIER, "")
    if old_main.strip():
        old = old_main.strip().replace("\nReproduce:", "\n\nReproduce:").split("\n\nReproduce:")[0]
        earlier = f"{old}\n\n{earlier.strip()}".strip()
    if estimates:  # the table it replaces stays below it (RESULTS.md keeps old figures)
        old_estimates = subsections.get(ESTIMATES, "").strip()
        subsections[ESTIMATES] = estimates.strip() + (
            f"\n\nReplaced by the run above:\n\n{old_estimates}" if old_estimates else "")
    parts = [SECTION, main.strip()]
    if earlier:
        parts.append(f"{EARLIER}\n\n{earlier}")
    parts += [f"{head}\n\n{text.strip()}" for head, text in subsections.items()]
    RESULTS.write_text(before.rstrip() + "\n\n" + "\n\n".join(parts) + "\n" + after)


def _split_subsections(body: str) -> tuple[str, dict[str, str]]:
    """(the text before the first "### " heading, {heading: its text}) of a section."""
    pieces = ("\n" + body).split("\n### ")
    subsections = {}
    for piece in pieces[1:]:
        head, _, text = piece.partition("\n")
        subsections[f"### {head.strip()}"] = text
    return pieces[0], subsections


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                              capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--no-estimates", dest="estimates", action="store_false",
                        help="skip slicing shapes to compare the estimate with PrusaSlicer")
    parser.add_argument("--estimates-only", action="store_true",
                        help="only slice the shapes and print the estimate table (no write)")
    args = parser.parse_args()
    if args.estimates_only:
        with tempfile.TemporaryDirectory() as folder:
            print(compare_estimates(Path(folder)))
        print(f"load average {os.getloadavg()[0]:.1f}")
        return
    with tempfile.TemporaryDirectory() as folder:
        stl = Path(folder) / "four-spheres.stl"
        started = time.perf_counter()
        count = write_test_stl(stl)
        print(f"wrote {count:,} triangles, {stl.stat().st_size / 1e6:.1f} MB "
              f"in {time.perf_counter() - started:.1f} s")
        results: dict[str, dict[str, float]] = {}
        for name, (command, env) in tools(stl, Path(folder) / "thumb.png").items():
            runs = [measure(command, env) for _ in range(args.runs)]
            best = min(runs, key=lambda r: r["seconds"])
            best["cpu"] = min(r["cpu"] for r in runs)
            best["rss_mb"] = max(r["rss_mb"] for r in runs)
            results[name] = best
            print(f"{name}: {best['seconds']:.2f} s, {best['rss_mb']:.0f} MB, rc {best['rc']}; "
                  f"{best['tail'].strip().splitlines()[-1] if best['tail'].strip() else ''}")
        estimates = compare_estimates(Path(folder)) if args.estimates else ""
    text = table(results)
    print()
    print(text)
    if not args.no_write:
        own = results["fabqueue analyse_mesh"]
        load = os.getloadavg()
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        write_results(
            f"#### {when}, commit {commit()}\n\n"
            f"{count:,}-triangle binary STL (four geodesic spheres, {count * 50 / 1e6:.0f} MB), "
            f"best of {args.runs} runs (peak RSS: the largest), each in its own process "
            f"(interpreter start and imports included); "
            f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
            f"{os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / "
            f"{load[2]:.1f} when it finished (a shared machine: CPU time is the steadier "
            f"figure).\n\n"
            f"{text}\n\n"
            f"fabqueue analyse_mesh = parse, vertex merge, watertight, winding, bodies, volume, "
            f"area, fit, estimate: {own['seconds'] / results['admesh']['seconds']:.2f}× "
            f"admesh's wall time, {own['cpu'] / results['admesh']['cpu']:.2f}× its CPU time, "
            f"{own['rss_mb'] / results['admesh']['rss_mb']:.2f}× its peak memory.\n\n"
            "Reproduce: `.venv/bin/python bench/bench_mesh.py`\n",
            f"{when}, commit {commit()}: `estimate_print` (closed form, from the mesh's "
            f"volume, area, side area, footprint, slopes and outline joints) against "
            f"PrusaSlicer 2.5's G-code totals, same parameters passed on its command line "
            f"(the estimate with PrusaSlicer's own motion defaults), PLA 1.24 g/cm³, no "
            f"skirt:\n\n{estimates}\n"
            if estimates else "",
        )
        print(f"\nwritten to {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
