"""Laser planning benchmark: travel after ordering vs drawing order, and planning time.

Run: ``python bench/bench_laser_planning.py``. Builds a shuffled sheet of nested parts (squares
with two round holes each), plans it, prints the figures and records them in
``bench/RESULTS.md`` under ``## Laser planning``.
"""

from __future__ import annotations

import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fabqueue.laser.materials import Operation
from fabqueue.laser.paths import Toolpath
from fabqueue.laser.planning import plan_toolpaths, travel_length

SECTION = "## Laser planning"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def nested_sheet(columns: int = 20, rows: int = 10, seed: int = 1) -> list[Toolpath]:
    """``columns × rows`` 20 mm squares, each with two 3 mm holes, in a shuffled order."""
    paths: list[Toolpath] = []
    angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    circle = np.c_[np.cos(angles), np.sin(angles)] * 3.0
    for c in range(columns):
        for r in range(rows):
            x, y = 5 + c * 25.0, 5 + r * 25.0
            square = np.array([[x, y], [x + 20, y], [x + 20, y + 20], [x, y + 20]])
            paths.append(Toolpath(Operation.CUT, "#ff0000", square, True))
            for hx in (x + 6, x + 14):
                holes = circle + np.array([hx, y + 10])
                paths.append(Toolpath(Operation.CUT, "#ff0000", holes, True))
    random.Random(seed).shuffle(paths)
    return paths


def run() -> dict[str, float]:
    paths = nested_sheet()
    drawing_order = travel_length(paths)
    started = time.perf_counter()
    plan = plan_toolpaths(paths)
    seconds = time.perf_counter() - started
    greedy = plan_toolpaths(paths, time_budget_s=0.0)  # nearest neighbour, no 2-opt
    return {"parts": len(paths) // 3, "contours": len(paths), "drawing_order_mm": drawing_order,
            "nearest_neighbour_mm": greedy.travel_mm, "planned_mm": plan.travel_mm,
            "ratio": plan.travel_mm / drawing_order,
            "seconds": seconds}


def record(figures: dict[str, float]) -> None:
    section = "\n".join([
        SECTION,
        "",
        "Command: `python bench/bench_laser_planning.py` "
        f"({platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f} while it ran: the machine is shared)",
        "",
        f"Sheet: {figures['parts']:.0f} parts (20 mm squares with 2 holes each, "
        f"{figures['contours']:.0f} contours), shuffled drawing order.",
        "",
        "| measure | value | goal |",
        "|---|---|---|",
        f"| laser-off travel, drawing order | {figures['drawing_order_mm']:.0f} mm | |",
        f"| laser-off travel, nearest neighbour only | {figures['nearest_neighbour_mm']:.0f} mm"
        " | |",
        f"| laser-off travel, planned (NN + 2-opt) | {figures['planned_mm']:.0f} mm | |",
        f"| planned / drawing order | {figures['ratio']:.3f} | ≤ 0.5 |",
        f"| planning time | {figures['seconds']:.3f} s | < 1 s |",
        "",
    ])
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
    if SECTION in text:  # replace our own section only; other sections stay as they are
        head, _, rest = text.partition(SECTION)
        nxt = rest.find("\n## ")
        tail = rest[nxt + 1:] if nxt >= 0 else ""
        text = head + section + ("\n" + tail if tail else "")
    else:
        text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + section
    RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    result = run()
    for key, value in result.items():
        print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
    record(result)
