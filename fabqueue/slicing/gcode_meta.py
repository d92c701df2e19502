"""Reading G-code: PrusaSlicer's totals comments (the safety check is ``core.gcode``)."""

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
