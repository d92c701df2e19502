"""Reading G-code: PrusaSlicer's totals comments, and whether moves stay on the bed."""

from __future__ import annotations

import re
from pathlib import Path

# The totals sit ~8 KB before the end (before the config block); read the tail, not the file.
TAIL_BYTES = 64 * 1024
MAX_TAIL_BYTES = 1024 * 1024

TOTALS = {
    "filament used [mm]": "filament_mm",
    "filament used [cm3]": "filament_cm3",
    "total filament used [g]": "filament_g",
    "filament used [g]": "filament_g",
    "total filament cost": "cost",
    "filament cost": "cost",
}
TIMES = {
    "estimated printing time (normal mode)": "estimated_seconds",
    "estimated printing time (silent mode)": "estimated_seconds_silent",
}
COMMENT_RE = re.compile(r"^;\s*([^=]+?)\s*=\s*(.+?)\s*$")
DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([dhms])")
UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> float:
    """``1d 2h 3m 4s`` → seconds. Raises ValueError when no part is found."""
    parts = DURATION_RE.findall(text)
    if not parts:
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(value) * UNIT_SECONDS[unit] for value, unit in parts)


def read_tail(path: Path, size: int) -> str:
    with path.open("rb") as handle:
        handle.seek(0, 2)
        length = handle.tell()
        handle.seek(max(0, length - size))
        return handle.read().decode("utf-8", errors="replace")


def parse_totals(path: Path) -> dict[str, float]:
    """PrusaSlicer's totals from the end of a G-code file.

    Keys (present when the file has them): ``filament_mm``, ``filament_cm3``, ``filament_g``,
    ``cost``, ``estimated_seconds``, ``estimated_seconds_silent``. Per-extruder lists
    (``1.0, 2.0``) are summed. Empty dict when the file has no totals.
    """
    size = TAIL_BYTES
    while True:
        totals = totals_from_text(read_tail(path, size))
        if totals or size >= MAX_TAIL_BYTES or size >= path.stat().st_size:
            return totals
        size *= 4


def totals_from_text(text: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith(";"):
            continue
        match = COMMENT_RE.match(line)
        if not match:
            continue
        key, value = match.group(1), match.group(2)
        if key in TIMES:
            try:
                totals[TIMES[key]] = parse_duration(value)
            except ValueError:
                continue
        elif key in TOTALS and TOTALS[key] not in totals:  # "total …" lines come first
            try:
                totals[TOTALS[key]] = sum(float(v) for v in value.split(",") if v.strip())
            except ValueError:
                continue
    return totals


MOVE_RE = re.compile(r"([XYZ])\s*(-?\d*\.?\d+)", re.IGNORECASE)
AXES = "XYZ"


def check_bounds(
    path: Path, build_volume: tuple[float, float, float], *, tolerance_mm: float = 0.5
) -> list[str]:
    """Problems with moves that leave ``0..X × 0..Y × 0..Z`` (plain words; empty when fine).

    Follows G90/G91 (absolute/relative), G92 (set position) and G28 (home), ignores comments,
    and reports each axis once, with the furthest value and the first line that left the
    volume. Arc bulges of G2/G3 are not followed (their end points are).
    """
    limits = dict(zip(AXES, build_volume, strict=True))
    position: dict[str, float | None] = dict.fromkeys(AXES)  # physical, None until known
    offset = dict.fromkeys(AXES, 0.0)  # physical = logical + offset (G92)
    relative = False
    worst: dict[tuple[str, str], tuple[float, int]] = {}  # (axis, "low"/"high") → value, line
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for number, raw in enumerate(handle, start=1):
            code = raw.split(";", 1)[0].strip().upper()
            if not code or code[0] != "G":
                continue
            command, _, args = code.partition(" ")
            if command in ("G0", "G1", "G2", "G3", "G00", "G01", "G02", "G03"):
                for axis, text in MOVE_RE.findall(args):
                    axis = axis.upper()
                    value = float(text)
                    current = position[axis]
                    if relative:
                        if current is None:
                            continue  # relative to an unknown place: nothing to check
                        target = current + value
                    else:
                        target = value + offset[axis]
                    position[axis] = target
                    if target < -tolerance_mm:
                        note(worst, (axis, "low"), target, number, lower=True)
                    elif target > limits[axis] + tolerance_mm:
                        note(worst, (axis, "high"), target, number, lower=False)
            elif command == "G90":
                relative = False
            elif command == "G91":
                relative = True
            elif command == "G92":
                for axis, text in MOVE_RE.findall(args):
                    axis = axis.upper()
                    if position[axis] is not None:
                        offset[axis] = position[axis] - float(text)  # type: ignore[operator]
            elif command == "G28":
                for axis in [a for a in AXES if a in args] or AXES:
                    position[axis] = 0.0
                    offset[axis] = 0.0
    return [describe(axis, side, value, line, limits[axis]) for (axis, side), (value, line)
            in sorted(worst.items())]


def note(
    worst: dict[tuple[str, str], tuple[float, int]],
    key: tuple[str, str],
    value: float,
    line: int,
    *,
    lower: bool,
) -> None:
    if key not in worst:
        worst[key] = (value, line)
        return
    best, first_line = worst[key]
    if (value < best) if lower else (value > best):
        worst[key] = (value, first_line)


def describe(axis: str, side: str, value: float, line: int, limit: float) -> str:
    if side == "low":
        return (f"{axis} goes to {value:.1f} mm, below 0 (first at line {line}): "
                "the head would hit the frame")
    what = "the printer's height" if axis == "Z" else "the bed"
    return (f"{axis} goes to {value:.1f} mm, beyond {what} of {limit:.0f} mm "
            f"(first at line {line})")
