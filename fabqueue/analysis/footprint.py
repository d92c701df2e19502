"""The tightest rectangle a part stands on, for fitting it diagonally on a bed."""

from __future__ import annotations

import math

import numpy as np

#: Huge meshes: the hull of a random subset picks the angle; the rectangle's sides are then
#: measured on all points, so the result never under-states the part.
_MAX_POINTS = 200_000


def min_area_rectangle(points: np.ndarray) -> tuple[float, float, float]:
    """Return (width, depth, angle in degrees) of the minimum-area rectangle around 2D points.

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


def footprints_for_fit(vertices: np.ndarray) -> list[tuple[float, float, float]]:
    """Minimum rectangles for standing on Z, then lying with Y up, then X up (see core.fit)."""
    return [
        min_area_rectangle(vertices[:, [0, 1]]),
        min_area_rectangle(vertices[:, [0, 2]]),
        min_area_rectangle(vertices[:, [1, 2]]),
    ]
