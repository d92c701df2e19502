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


def part(x: float, y: float, circle: np.ndarray) -> list[Toolpath]:
    """A 20 mm square part with two 3 mm round holes."""
    square = np.array([[x, y], [x + 20, y], [x + 20, y + 20], [x, y + 20]])
    paths = [Toolpath(Operation.CUT, "#ff0000", square, True)]
    for hx in (x + 6, x + 14):
        paths.append(Toolpath(Operation.CUT, "#ff0000", circle + np.array([hx, y + 10]), True))
    return paths


def nested_sheet(parts: int = 200, *, scattered: bool = False, seed: int = 1) -> list[Toolpath]:
    """``parts`` parts in a shuffled drawing order: packed in a 20 × 10 grid, or scattered
    over random free slots of a 40 × 20 grid (an irregular layout, where 2-opt has work)."""
    rng = random.Random(seed)
    angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    circle = np.c_[np.cos(angles), np.sin(angles)] * 3.0
    columns, rows = (40, 20) if scattered else (20, 10)
    slots = [(c, r) for c in range(columns) for r in range(rows)]
    chosen = rng.sample(slots, parts) if scattered else slots[:parts]
    paths = [p for c, r in chosen for p in part(5 + c * 25.0, 5 + r * 25.0, circle)]
    rng.shuffle(paths)
    return paths


def measure(paths: list[Toolpath]) -> dict[str, float]:
    drawing_order = travel_length(paths)
    started = time.perf_counter()
    plan = plan_toolpaths(paths)
    seconds = time.perf_counter() - started
    greedy = plan_toolpaths(paths, time_budget_s=0.0)  # nearest neighbour, no 2-opt
    return {"contours": len(paths), "drawing_order_mm": drawing_order,
            "nearest_neighbour_mm": greedy.travel_mm, "planned_mm": plan.travel_mm,
            "ratio": plan.travel_mm / drawing_order, "seconds": seconds}


def run() -> dict[str, dict[str, float]]:
    return {"packed grid": measure(nested_sheet()),
            "scattered": measure(nested_sheet(scattered=True))}


def record(results: dict[str, dict[str, float]]) -> None:
    names = list(results)
    def row(label: str, key: str, fmt: str, goal: str = "") -> str:
        cells = " | ".join(format(results[n][key], fmt) for n in names)
        return f"| {label} | {cells} | {goal} |"

    section = "\n".join([
        SECTION,
        "",
        "Command: `python bench/bench_laser_planning.py` "
        f"({platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f} while it ran: the machine is shared)",
        "",
        "Sheets of 200 parts (20 mm squares with 2 round holes each: 600 closed contours, every "
        "hole inside its part), drawing order shuffled. Travel is laser-off distance in mm.",
        "",
        f"| measure | {' | '.join(names)} | goal |",
        "|---|" + "---|" * len(names) + "---|",
        row("travel, drawing order (mm)", "drawing_order_mm", ".0f"),
        row("travel, nearest neighbour only (mm)", "nearest_neighbour_mm", ".0f"),
        row("travel, planned: NN + 2-opt (mm)", "planned_mm", ".0f"),
        row("planned / drawing order", "ratio", ".3f", "≤ 0.5"),
        row("planning time (s)", "seconds", ".3f", "< 1 s"),
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
    figures = run()
    for sheet, values in figures.items():
        print(sheet + ": " + ", ".join(f"{k} {v:.3f}" for k, v in values.items()))
    record(figures)
