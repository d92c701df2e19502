"""Does a part fit a build volume, and how must it be turned? (pure)

An orientation is a short rotation recipe a slicer can apply, e.g. ``"as_is"``, ``"z90"``
(turn 90° about Z), ``"x90"`` (lay it down so its Y axis points up), ``"y90+z37"`` (lay it so
X points up, then turn 37° about Z to fit the bed diagonally).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

Size3 = tuple[float, float, float]

#: Which axis ends up vertical, with the rotation that puts it there, in order of preference.
_UPRIGHTS: tuple[tuple[int, str], ...] = ((2, ""), (1, "x90"), (0, "y90"))
_ANGLE_STEP_DEG = 1.0
_EPS = 1e-6


def rect_rotation(w: float, d: float, bed_w: float, bed_d: float) -> float | None:
    """Smallest angle in degrees (0..90) that fits a w×d rectangle on a bed_w×bed_d bed.

    Tries 0 and 90 exactly, then whole degrees in between: a part that fits only at an
    irrational angle is refused, never a part accepted that does not fit.
    """
    if w <= bed_w + _EPS and d <= bed_d + _EPS:
        return 0.0
    if d <= bed_w + _EPS and w <= bed_d + _EPS:
        return 90.0
    if math.hypot(w, d) > math.hypot(bed_w, bed_d) + _EPS:
        return None
    steps = round(90 / _ANGLE_STEP_DEG)
    for i in range(1, steps):
        a = math.radians(i * _ANGLE_STEP_DEG)
        c, s = math.cos(a), math.sin(a)
        if w * c + d * s <= bed_w + _EPS and w * s + d * c <= bed_d + _EPS:
            return i * _ANGLE_STEP_DEG
    return None


def fit_orientation(
    size_mm: Size3,
    volume_mm: Size3,
    footprints: Sequence[tuple[float, float, float]] | None = None,
) -> str | None:
    """Return how to turn a part of bounding box ``size_mm`` to fit ``volume_mm``, or None.

    Tries standing as drawn first, then lying with Y or X up; for each, turns about Z by 90°
    or by the smallest whole angle that fits the footprint diagonally. ``footprints`` may give,
    per up-axis (Z, Y, X), a tighter footprint rectangle ``(w, d, angle)`` (e.g. the minimum
    -area rectangle of the convex hull, ``angle`` its rotation from the part's axes).
    """
    bed_w, bed_d, bed_h = volume_mm
    for n, (up, recipe) in enumerate(_UPRIGHTS):
        if size_mm[up] > bed_h + _EPS:
            continue
        w, d = (size_mm[i] for i in range(3) if i != up)
        turn = rect_rotation(w, d, bed_w, bed_d)
        offset = 0.0
        if turn is None and footprints is not None:
            fw, fd, offset = footprints[n]
            turn = rect_rotation(fw, fd, bed_w, bed_d)
        if turn is None:
            continue
        return _recipe(recipe, (turn - offset) % 360)
    return None


def _recipe(lay: str, turn: float) -> str:
    steps = [lay] if lay else []
    turn = round(turn) % 360
    if turn:
        steps.append(f"z{turn}")
    return "+".join(steps) or "as_is"


def fits(size_mm: Size3, volume_mm: Size3) -> bool:
    return fit_orientation(size_mm, volume_mm) is not None


def fitting_ids(
    size_mm: Size3,
    volumes: Iterable[tuple[str, Size3]],
    footprints: Sequence[tuple[float, float, float]] | None = None,
) -> dict[str, str]:
    """Map each (id, build volume) the part fits to the orientation it needs."""
    found: dict[str, str] = {}
    for ident, volume in volumes:
        orientation = fit_orientation(size_mm, volume, footprints)
        if orientation is not None:
            found[ident] = orientation
    return found
