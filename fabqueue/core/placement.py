"""How a part is turned to fit a printer: the one rule the analysis judges by and the slicer
applies (pure: numbers in, a rotation out).

The analysis used to promise an orientation (lying down, or turned diagonally) that nothing
applied: the slicer got the part as drawn and refused it ("does not fit on the printer's
bed") after staff had approved it. Now the same function gives the analysis its verdict and
the slicing its rotation, so they cannot disagree.

Preference order as in :func:`fabqueue.core.fit.fit_orientation`: standing as drawn, then
lying with Y up, then with X up; each turned about Z by 90° or by the smallest whole angle
that fits the footprint diagonally (the bounding box first, the tightest rectangle around the
footprint when the box does not fit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fabqueue.core.fit import rect_rotation

#: Huge meshes: the hull of a seeded subset picks the angle; the rectangle's sides are then
#: measured on all points, so the result never under-states the part.
_MAX_POINTS = 200_000
_EPS = 1e-6
#: Room kept free on every side of the bed for the skirt our profiles print (one loop 2 mm
#: out, ~0.5 mm wide): without it a part that just fits gets its skirt off the bed, which
#: FabQueue's own G-code check then refuses after slicing.
MARGIN_MM = 3.0


def _rot_x(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_y(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


#: (recipe word, rotation): as drawn; Y up (about X); X up (about Y).
LAYS: tuple[tuple[str, np.ndarray], ...] = (("", np.eye(3)), ("x90", _rot_x(90)),
                                            ("y90", _rot_y(90)))


@dataclass(frozen=True)
class Placement:
    recipe: str  # e.g. "as_is", "z90", "x90", "y90+z37.5": for people and the job's record
    rotation: np.ndarray  # 3×3, applied to the part's points (column vectors)


def min_area_rectangle(points: np.ndarray) -> tuple[float, float, float]:
    """(width, depth, angle in degrees) of the minimum-area rectangle around 2D points.

    The optimal rectangle has a side along a convex hull edge, so each edge angle is tried.
    """
    from scipy.spatial import ConvexHull, QhullError

    sample = points
    if len(points) > _MAX_POINTS:
        sample = points[np.random.default_rng(0).choice(len(points), _MAX_POINTS, replace=False)]
    try:
        hull = sample[ConvexHull(sample).vertices].astype(np.float64)
    except (QhullError, ValueError):
        extent = points.max(axis=0) - points.min(axis=0)
        return float(extent[0]), float(extent[1]), 0.0
    edges = np.roll(hull, -1, axis=0) - hull
    angles = np.unique(np.mod(np.arctan2(edges[:, 1], edges[:, 0]), math.pi / 2))
    cos, sin = np.cos(angles), np.sin(angles)
    u = hull[:, 0, None] * cos + hull[:, 1, None] * sin
    v = -hull[:, 0, None] * sin + hull[:, 1, None] * cos
    areas = (u.max(axis=0) - u.min(axis=0)) * (v.max(axis=0) - v.min(axis=0))
    best = float(angles[int(np.argmin(areas))])
    c, s = math.cos(best), math.sin(best)
    full = points.astype(np.float64)
    uu = full[:, 0] * c + full[:, 1] * s
    vv = -full[:, 0] * s + full[:, 1] * c
    return float(np.ptp(uu)), float(np.ptp(vv)), math.degrees(best)


def _recipe(lay: str, turn: float) -> str:
    turn = round(turn % 360, 1)
    steps = [lay] if lay else []
    if turn and turn != 360:
        steps.append(f"z{turn:g}")
    return "+".join(steps) or "as_is"


def placement(vertices: np.ndarray, volume_mm: tuple[float, float, float],
              margin_mm: float = MARGIN_MM) -> Placement | None:
    """The rotation that makes the part (its points, N×3, in mm) fit ``volume_mm`` with
    ``margin_mm`` free on every side of the bed, or None when no orientation fits. The
    rotation turns the points about the origin; the slicer then centres the part."""
    bed_w, bed_d, bed_h = (volume_mm[0] - 2 * margin_mm, volume_mm[1] - 2 * margin_mm,
                           volume_mm[2])
    points = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    if not len(points):
        return None
    for word, lay in LAYS:
        turned = points if not word else points @ lay.T
        size = turned.max(axis=0) - turned.min(axis=0)
        if size[2] > bed_h + _EPS:
            continue
        offset = 0.0
        turn = rect_rotation(float(size[0]), float(size[1]), bed_w, bed_d)
        if turn is None:
            w, d, offset = min_area_rectangle(turned[:, :2])
            turn = rect_rotation(w, d, bed_w, bed_d)
        if turn is None:
            continue
        # Turning by -offset lays the tightest rectangle along the axes; then by ``turn``.
        angle = turn - offset
        rotation = lay if not angle else rot_z(angle) @ lay
        return Placement(_recipe(word, angle), rotation)
    return None
