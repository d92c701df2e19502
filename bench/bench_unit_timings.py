"""The speed limits that used to be asserts in unit tests, measured here instead.

    .venv/bin/python bench/bench_unit_timings.py [--repeats 5] [--write]

The suite must pass on a loaded 2-core machine, so its unit tests check what is refused or
computed, not how fast; these are the same operations (set up by the same helpers as the
tests), timed on an idle machine against the limits the tests had. Median of the repeats.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import trimesh  # noqa: E402
from bench_dispatch import write_section  # noqa: E402

from fabqueue.analysis.guards import UploadLimits  # noqa: E402
from fabqueue.slicing.gcode_meta import parse_totals  # noqa: E402
from tests.analysis import test_mesh, test_mesh_hostile  # noqa: E402
from tests.laser.test_laser_svg import refused_code  # noqa: E402
from tests.slicing.test_gcode_meta import TOTALS_BLOCK  # noqa: E402

SECTION = "## Unit-test speed limits"


def billion_laughs(_tmp: Path) -> Callable[[], object]:
    entities = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    data = (f'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY lol0 "lol">{entities}]>'
            '<svg xmlns="http://www.w3.org/2000/svg"><text>&lol9;</text></svg>').encode()
    return lambda: refused_code(data)


def gcode_tail(tmp: Path) -> Callable[[], object]:
    gcode = tmp / "big.gcode"
    gcode.write_text("; filament used [g] = 999\n" + "G1 X10 Y10 E0.1\n" * 320_000
                     + TOTALS_BLOCK)
    return lambda: parse_totals(gcode)


def three_spheres(tmp: Path) -> Callable[[], object]:
    sphere = trimesh.creation.icosphere(subdivisions=6, radius=10)
    parts = [sphere.copy() for _ in range(3)]
    for i, part in enumerate(parts):
        part.apply_translation((25.0 * i, 0, 0))
    path = test_mesh.write_stl(trimesh.util.concatenate(parts), tmp / "three.stl")
    return lambda: test_mesh.analyse(path)


def huge_stl_header(tmp: Path) -> Callable[[], object]:
    count = 2_500_000
    path = tmp / "huge.stl"
    with path.open("wb") as f:
        f.write(b"x" * 80 + struct.pack("<I", count))
        f.truncate(84 + 50 * count)
    limits = UploadLimits(max_bytes=200 * 1024 * 1024)
    return lambda: test_mesh_hostile.analyse(path, limits=limits)


def zip_bomb(tmp: Path) -> Callable[[], object]:
    path = tmp / "bomb.3mf"
    test_mesh_hostile.write_zip_bomb(path)
    return lambda: test_mesh_hostile.analyse(path, "3mf")


def svg_million_segments(_tmp: Path) -> Callable[[], object]:
    from tests.laser.test_laser_svg import svg

    data = svg(f'<path d="{"M0 0" + " L1 1 L2 0" * 500_000}" stroke="red"/>')
    return lambda: refused_code(data)


def drawing_million_segments(tmp: Path) -> Callable[[], object]:
    from tests.analysis import test_drawing

    path = test_drawing.write_svg(tmp, f'<path d="{"M0 0" + " L1 1 L2 0" * 500_000}" '
                                       'stroke="red" fill="none"/>')
    return lambda: test_drawing.analyse(path)


def nested_parts(_tmp: Path) -> Callable[[], object]:
    from fabqueue.laser.planning import plan_toolpaths
    from tests.laser.test_laser_planning import nested_sheet

    paths = nested_sheet(200)
    return lambda: plan_toolpaths(paths)


def thumbnail_million(tmp: Path) -> Callable[[], object]:
    import numpy as np

    from fabqueue.analysis.thumbnail import render_mesh_thumbnail

    sphere = trimesh.creation.icosphere(subdivisions=7)
    v, f = sphere.vertices.astype(np.float32), sphere.faces.astype(np.int32)
    verts = np.concatenate([v + np.array([2.5 * i, 0, 0]) for i in range(3)])
    faces = np.concatenate([f + i * len(v) for i in range(3)])
    return lambda: render_mesh_thumbnail(verts, faces, tmp / "big.png")


def gcode_bounds(tmp: Path) -> Callable[[], object]:
    # The bounds are checked by the G-code check (core.gcode) since slicing.gcode_meta's own
    # check_bounds went: the same file through the check staff uploads and sliced programs get.
    from fabqueue.analysis.machine_check import check_file
    from fabqueue.core.gcode import MachineKind, MachineLimits

    gcode = tmp / "ten.gcode"
    gcode.write_text("G28\nG90\n" + "".join(
        f"G1 X{i % 200 + 0.5:.3f} Y{i % 180:.3f} E0.0123 ; move\n" for i in range(330_000)))
    limits = MachineLimits(MachineKind.PRINTER, (220.0, 220.0, 250.0), nozzle_max_c=250,
                           bed_max_c=100)
    return lambda: check_file(gcode, limits)


CASES = [
    ("SVG billion laughs refused (tests/laser/test_laser_svg.py)", billion_laughs, 0.5),
    ("G-code totals from the tail of 5 MB (tests/slicing/test_gcode_meta.py)", gcode_tail,
     0.1),
    ("3 × 81,920-face spheres analysed (tests/analysis/test_mesh.py)", three_spheres, 1.5),
    ("STL announcing 2.5 M triangles refused (tests/analysis/test_mesh_hostile.py)",
     huge_stl_header, 0.2),
    ("3MF zip bomb refused (tests/analysis/test_mesh_hostile.py)", zip_bomb, 0.5),
    ("SVG with a million segments refused (tests/laser/test_laser_svg.py)",
     svg_million_segments, 1.0),
    ("drawing with a million segments refused (tests/analysis/test_drawing.py)",
     drawing_million_segments, 1.0),
    ("200 nested parts planned (tests/laser/test_laser_planning.py)", nested_parts, 1.0),
    ("1 M-triangle thumbnail (tests/analysis/test_mesh_thumbnail.py)", thumbnail_million,
     1.5),
    ("10 MB G-code bounds checked (tests/slicing/test_gcode_meta.py)", gcode_bounds, 5.0),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = ap.parse_args()
    lines = ["| operation | median s | limit s | within |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, setup, limit in CASES:
            run = setup(Path(tmp))
            times = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                run()
                times.append(time.perf_counter() - started)
            median = statistics.median(times)
            lines.append(f"| {name} | {median:.3f} | {limit} | "
                         f"{'yes' if median < limit else 'NO'} |")
    body = (f"`.venv/bin/python bench/bench_unit_timings.py --write` on {platform.node()} "
            f"({platform.machine()}), {args.repeats} repeats.\n\n" + "\n".join(lines))
    print(body)
    if args.write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
