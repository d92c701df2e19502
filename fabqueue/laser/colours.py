"""The colours a drawing uses, for people to choose an operation for each (pure).

A drawing from another lab (all black strokes, say) is not refused for breaking the site's
colour convention: the analysis lists every paint it found, with how much of it there is,
and the resident (or staff at approval) picks cut, score, engrave or ignore for each. The
convention is preselected where it matches.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from fabqueue.laser.paths import IGNORE, ColourMap, paint_key, polyline_length
from fabqueue.laser.svg import Drawing, Polyline


def _area(lines: list[Polyline]) -> float:
    """A filled shape's area: its closed outlines' signed areas summed (holes wound the other
    way subtract), as a magnitude."""
    total = 0.0
    for line in lines:
        if len(line.points) < 3:
            continue
        x, y = line.points[:, 0], line.points[:, 1]
        total += 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    return abs(total)


def found_colours(drawing: Drawing, colours: ColourMap | None = None) -> list[dict[str, Any]]:
    """Every paint in the drawing: ``{"key", "paint", "colour", "shapes", "length_mm" |
    "area_mm2", "preset", "operation"}``, strokes first, most used first.

    ``preset`` is the site convention's operation (or ``ignore``); ``operation`` what the
    job will do (the job's choice where it made one)."""
    colours = colours or ColourMap()
    amount: dict[tuple[str, str], float] = defaultdict(float)
    shapes: dict[tuple[str, str], int] = defaultdict(int)
    by_element: dict[int, list[Polyline]] = defaultdict(list)
    for line in drawing.polylines:
        by_element[line.element].append(line)
    for lines in by_element.values():
        first = lines[0]
        if first.stroke is not None:
            key = ("stroke", first.stroke.lower())
            amount[key] += sum(polyline_length(p.points, p.closed) for p in lines)
            shapes[key] += 1
        if first.fill is not None:
            key = ("fill", first.fill.lower())
            amount[key] += _area(lines)
            shapes[key] += 1
    rows: list[dict[str, Any]] = []
    for (paint, colour), value in sorted(amount.items(),
                                         key=lambda kv: (kv[0][0] != "stroke", -kv[1])):
        preset = colours.convention(paint, colour)
        operation = colours.operation(paint, colour)
        row: dict[str, Any] = {
            "key": paint_key(paint, colour), "paint": paint, "colour": colour,
            "shapes": shapes[(paint, colour)],
            "preset": preset.value if preset else IGNORE,
            "operation": operation.value if operation else IGNORE,
        }
        row["length_mm" if paint == "stroke" else "area_mm2"] = round(value, 1)
        rows.append(row)
    return rows
