"""Toolpath order: engrave, then score, then cut; holes before the parts around them; short travel.

Pure functions over :class:`Toolpath` lists. Engrave hatching keeps its back-and-forth raster
order. Score and cut paths are ordered by ``tour.order_group``: nearest neighbour (closed
contours may start at any vertex, open paths at either end), 2-opt moves that respect "inner
before outer" within a time budget, and each closed contour rotated to its best start vertex.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from fabqueue.laser.materials import OPERATION_ORDER, Operation
from fabqueue.laser.paths import Toolpath
from fabqueue.laser.tour import order_group

Point = tuple[float, float]


@dataclass
class Plan:
    paths: list[Toolpath]  # execution order; closed ones rotated, open ones maybe reversed
    travel_mm: float  # laser-off distance from ``start`` through every path
    start: Point

    def operations(self) -> list[Operation]:
        return [p.operation for p in self.paths]


def plan_toolpaths(
    paths: list[Toolpath], *, start: Point = (0.0, 0.0), time_budget_s: float = 0.5
) -> Plan:
    """Order ``paths`` for the laser: engrave → score → cut, inner cuts before outer ones."""
    deadline = time.perf_counter() + time_budget_s
    head = np.asarray(start, dtype=float)
    ordered: list[Toolpath] = []
    for op in OPERATION_ORDER:
        group = [p for p in paths if p.operation is op]
        if not group:
            continue
        if op is Operation.ENGRAVE:
            placed = _raster_order(group, head)  # hatch rows already sweep back and forth
        else:
            parents = containers(group) if op is Operation.CUT else [[] for _ in group]
            placed = order_group(group, parents, head, deadline)
        ordered.extend(placed)
        head = _exit(placed[-1])
    return Plan(ordered, travel_length(ordered, start), start)


def travel_length(paths: list[Toolpath], start: Point = (0.0, 0.0)) -> float:
    """Laser-off distance visiting ``paths`` as given (each starts at its first point)."""
    if not paths:
        return 0.0
    entries = np.array([p.points[0] for p in paths])
    exits = np.array([_exit(p) for p in paths])
    previous = np.vstack([np.asarray(start, dtype=float), exits[:-1]])
    return float(np.hypot(*(entries - previous).T).sum())


def rotate_to_nearest(points: np.ndarray, head: np.ndarray | Point) -> np.ndarray:
    """A closed ring re-started at its vertex nearest ``head`` (same shape, same direction)."""
    nearest = int(np.argmin(np.hypot(*(points - np.asarray(head)).T)))
    return np.roll(points, -nearest, axis=0)


def containers(paths: list[Toolpath]) -> list[list[int]]:
    """For each path, the closed paths that enclose it (so must be cut after it).

    A bbox test first (the container's box holds the path's box and is larger; candidates
    come from a sweep over boxes sorted by left edge), then point-in-polygon on one vertex.
    Equal boxes (a line drawn twice) never contain each other.
    """
    result: list[list[int]] = [[] for _ in paths]
    if not paths:
        return result
    boxes = np.array([[*p.points.min(axis=0), *p.points.max(axis=0)] for p in paths])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    probes = np.array([p.points[0] for p in paths])
    by_left = np.argsort(boxes[:, 0], kind="stable")
    lefts = boxes[by_left, 0]
    for j, path in enumerate(paths):
        if not path.closed:
            continue
        box = boxes[j]
        lo, hi = np.searchsorted(lefts, box[0], "left"), np.searchsorted(lefts, box[2], "right")
        cand = by_left[lo:hi]
        cand = cand[(boxes[cand, 1] >= box[1]) & (boxes[cand, 2] <= box[2])
                    & (boxes[cand, 3] <= box[3]) & (areas[cand] < areas[j])]
        if cand.size:
            for i in cand[points_in_polygon(probes[cand], path.points)]:
                result[int(i)].append(j)
    return result


def point_in_polygon(point: np.ndarray, ring: np.ndarray) -> bool:
    return bool(points_in_polygon(np.asarray(point, dtype=float)[None, :], ring)[0])


def points_in_polygon(points: np.ndarray, ring: np.ndarray, chunk: int = 1 << 22) -> np.ndarray:
    """Even-odd ray casting of many points against one ring (points × edges, in chunks)."""
    a, b = ring, np.roll(ring, -1, axis=0)
    result = np.zeros(len(points), dtype=bool)
    step = max(1, chunk // max(len(ring), 1))
    for start in range(0, len(points), step):
        x = points[start:start + step, 0:1]
        y = points[start:start + step, 1:2]
        crosses = (a[:, 1] > y) != (b[:, 1] > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = a[:, 0] + (y - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
        result[start:start + step] = np.count_nonzero(crosses & (x_at > x), axis=1) % 2 == 1
    return result


def _exit(path: Toolpath) -> np.ndarray:
    return path.points[0] if path.closed else path.points[-1]


def _raster_order(group: list[Toolpath], head: np.ndarray) -> list[Toolpath]:
    first, last = group[0].points[0], group[-1].points[-1]
    if np.hypot(*(last - head)) < np.hypot(*(first - head)):
        return [Toolpath(p.operation, p.colour, p.points[::-1], p.closed) for p in reversed(group)]
    return list(group)
