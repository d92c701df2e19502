"""Toolpath order: engrave, then score, then cut; holes before the parts around them; short travel.

Pure functions over :class:`Toolpath` lists. Within an operation the paths are ordered by
nearest neighbour (closed contours may start at any vertex, open paths at either end), then
improved by 2-opt moves that respect "inner before outer" within a time budget, and finally
each closed contour is rotated to start at its best vertex.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from fabqueue.laser.materials import OPERATION_ORDER, Operation
from fabqueue.laser.paths import Toolpath

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
            placed = _order_group(group, parents, head, deadline)
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


def _order_group(
    group: list[Toolpath], parents: list[list[int]], head: np.ndarray, deadline: float
) -> list[Toolpath]:
    order, entries = _nearest_neighbour(group, parents, head)
    order, entries = _two_opt(group, parents, order, entries, head, deadline)
    entries = _best_entries(group, order, entries, head)
    return [_placed(group[i], entry) for i, entry in zip(order, entries, strict=True)]


def _placed(path: Toolpath, entry: int) -> Toolpath:
    """``path`` started at vertex ``entry`` (closed) or reversed when entry is its end (open)."""
    if path.closed:
        points = np.roll(path.points, -entry, axis=0)
    else:
        points = path.points if entry == 0 else path.points[::-1]
    return Toolpath(path.operation, path.colour, points, path.closed)


def _entry_exit(path: Toolpath, entry: int) -> tuple[np.ndarray, np.ndarray]:
    if path.closed:
        return path.points[entry], path.points[entry]
    if entry == 0:
        return path.points[0], path.points[-1]
    return path.points[-1], path.points[0]


def _candidates(path: Toolpath) -> tuple[np.ndarray, np.ndarray]:
    """Possible entry points and their entry indices (open: the end index means reversed)."""
    if path.closed:
        return path.points, np.arange(len(path.points))
    return path.points[[0, -1]], np.array([0, len(path.points) - 1])


def _nearest_neighbour(
    group: list[Toolpath], parents: list[list[int]], head: np.ndarray
) -> tuple[list[int], list[int]]:
    """Greedy tour: always go to the nearest entry point of a path whose holes are done."""
    n = len(group)
    waiting_children = np.zeros(n, dtype=int)
    for plist in parents:
        for j in plist:
            waiting_children[j] += 1
    usable = waiting_children == 0
    if not usable.any():  # a containment cycle (should not happen): take anything
        usable[:] = True
    done = np.zeros(n, dtype=bool)
    index = _EntryIndex(group)
    order: list[int] = []
    entries: list[int] = []
    position = head
    for _ in range(n):
        item, entry = index.nearest(position, usable)
        done[item] = True
        usable[item] = False
        index.remove(item)
        for j in parents[item]:
            waiting_children[j] -= 1
            usable[j] = waiting_children[j] == 0 and not done[j]
        if not usable.any() and not done.all():
            usable = ~done  # a cycle: carry on rather than stall
        order.append(item)
        entries.append(entry)
        position = _entry_exit(group[item], entry)[1]
    return order, entries


class _EntryIndex:
    """A k-d tree over every path's possible entry points, rebuilt as paths are used up.

    Queries widen (k × 4) until a usable path shows up, so blocked outer contours near the
    head cost a few wider queries instead of a scan of the whole sheet; rebuilding when half
    the points belong to finished paths keeps the whole tour near n log n.
    """

    def __init__(self, group: list[Toolpath]) -> None:
        candidates = [_candidates(p) for p in group]
        self.points = np.concatenate([c[0] for c in candidates])
        self.owner = np.repeat(np.arange(len(group)), [len(c[0]) for c in candidates])
        self.entry = np.concatenate([c[1] for c in candidates])
        self.alive = np.ones(len(group), dtype=bool)
        self._build()

    def _build(self) -> None:
        self.ids = np.flatnonzero(self.alive[self.owner])
        self.tree = cKDTree(self.points[self.ids])
        self.stale = 0

    def remove(self, item: int) -> None:
        self.alive[item] = False
        self.stale += int(np.count_nonzero(self.owner[self.ids] == item))
        if self.alive.any() and self.stale * 2 > len(self.ids):
            self._build()

    def nearest(self, position: np.ndarray, usable: np.ndarray) -> tuple[int, int]:
        size = len(self.ids)
        k = min(16, size)
        while True:
            _dist, found = self.tree.query(position, k=k)
            found = self.ids[np.atleast_1d(found)[np.atleast_1d(_dist) < np.inf]]
            good = found[usable[self.owner[found]]]
            if good.size:
                return int(self.owner[good[0]]), int(self.entry[good[0]])
            if k >= size:
                raise RuntimeError("no usable path left to order")  # a bug, not bad input
            k = min(k * 4, size)


def _two_opt(
    group: list[Toolpath], parents: list[list[int]], order: list[int], entries: list[int],
    head: np.ndarray, deadline: float,
) -> tuple[list[int], list[int]]:
    """Reverse runs of the tour while it shortens travel and keeps holes before their parts.

    Reversing positions i..j swaps each path's entry and exit (open paths are cut the other
    way; closed ones keep their start), so only the two joining travels change.
    """
    n = len(order)
    if n < 3:
        return order, entries
    order, entries = list(order), list(entries)
    pairs = [_entry_exit(group[i], e) for i, e in zip(order, entries, strict=True)]
    ent = np.array([p[0] for p in pairs])
    ext = np.array([p[1] for p in pairs])
    improved = True
    while improved and time.perf_counter() < deadline:
        improved = False
        limit = _reversal_limits(order, parents)
        following = np.vstack([ent[1:], [np.nan, np.nan]])  # entry of the next path; nan: end
        for i in range(n):
            if i % 32 == 0 and time.perf_counter() >= deadline:
                break
            j = np.arange(i, min(limit[i], n))
            if j.size == 0:
                continue
            before = head if i == 0 else ext[i - 1]
            after = following[j]
            old = np.hypot(*(ent[i] - before)) + np.nan_to_num(np.hypot(*(after - ext[j]).T))
            new = np.hypot(*(ext[j] - before).T) + np.nan_to_num(np.hypot(*(after - ent[i]).T))
            gain = old - new
            k = int(np.argmax(gain))
            if gain[k] > 1e-6:
                end = int(j[k]) + 1
                order[i:end] = order[i:end][::-1]
                entries[i:end] = [_other_end(group[p], e)
                                  for p, e in zip(order[i:end], entries[i:end][::-1], strict=True)]
                ent[i:end], ext[i:end] = ext[i:end][::-1].copy(), ent[i:end][::-1].copy()
                limit = _reversal_limits(order, parents)
                following = np.vstack([ent[1:], [np.nan, np.nan]])
                improved = True
    return order, entries


def _other_end(path: Toolpath, entry: int) -> int:
    if path.closed:
        return entry
    return len(path.points) - 1 if entry == 0 else 0


def _reversal_limits(order: list[int], parents: list[list[int]]) -> np.ndarray:
    """limit[i]: a reversal starting at i may end at most at position limit[i] - 1.

    Reversing i..j is safe unless some path in it has a container at a position <= j; the
    earliest container position of paths from i onwards (a suffix minimum) bounds j.
    """
    n = len(order)
    position = np.empty(n, dtype=int)
    position[np.asarray(order)] = np.arange(n)
    first_parent = np.full(n, n, dtype=int)
    for pos, item in enumerate(order):
        if parents[item]:
            first_parent[pos] = min(position[j] for j in parents[item])
    return np.minimum.accumulate(first_parent[::-1])[::-1]


def _best_entries(
    group: list[Toolpath], order: list[int], entries: list[int], head: np.ndarray
) -> list[int]:
    """Re-choose each path's start given its neighbours; the current one is a candidate,
    so this never lengthens travel."""
    entries = list(entries)
    previous = head
    for pos, item in enumerate(order):
        path = group[item]
        if pos + 1 < len(order):
            nxt = _entry_exit(group[order[pos + 1]], entries[pos + 1])[0]
        else:
            nxt = None
        points, indices = _candidates(path)
        exits = points if path.closed else points[::-1]
        cost = np.hypot(*(points - previous).T)
        if nxt is not None:
            cost = cost + np.hypot(*(exits - nxt).T)
        entries[pos] = int(indices[int(np.argmin(cost))])
        previous = _entry_exit(path, entries[pos])[1]
    return entries
