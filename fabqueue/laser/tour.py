"""The tour through one operation's paths: nearest neighbour, then two kinds of 2-opt.

A *part* is a top-level closed contour with everything inside it. Holes must be cut before
the part around them, which pins most path-level 2-opt moves on a nested sheet; so the tour
is built part by part (nearest neighbour stays inside a part until it is done), parts are
reordered as units by an asymmetric 2-opt, and a path-level 2-opt then flips and reorders
whatever the precedence still allows. Both 2-opts only accept shortening moves.
"""

from __future__ import annotations

import itertools
import time

import numpy as np
from scipy.spatial import cKDTree

from fabqueue.laser.paths import Toolpath

#: Below this many paths left in the current part, distances are computed directly.
_SMALL_PART = 64


def order_group(
    group: list[Toolpath], parents: list[list[int]], head: np.ndarray, deadline: float
) -> list[Toolpath]:
    """``group`` in cutting order, each path started at its best point."""
    part_of = _parts(parents)
    order, entries = _nearest_neighbour(group, parents, part_of, head)
    if len(np.unique(part_of)) < len(group):  # some part has holes: move parts as units
        order, entries = _part_two_opt(group, parents, part_of, order, entries, head, deadline)
    order, entries = _two_opt(group, parents, order, entries, head, deadline)
    entries = _best_entries(group, order, entries, head)
    return [_placed(group[i], entry) for i, entry in zip(order, entries, strict=True)]


def _parts(parents: list[list[int]]) -> np.ndarray:
    """For each path, the top-level contour whose part it belongs to (itself if top-level)."""
    part_of = np.arange(len(parents))
    for i, plist in enumerate(parents):
        tops = [j for j in plist if not parents[j]]
        if tops:
            part_of[i] = tops[0]
        elif plist:
            part_of[i] = plist[0]  # only in a containment cycle
    return part_of


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


def _other_end(path: Toolpath, entry: int) -> int:
    if path.closed:
        return entry
    return len(path.points) - 1 if entry == 0 else 0


# --- nearest neighbour -----------------------------------------------------------------------


def _nearest_neighbour(
    group: list[Toolpath], parents: list[list[int]], part_of: np.ndarray, head: np.ndarray
) -> tuple[list[int], list[int]]:
    """Greedy tour: the nearest entry point of a path whose holes are done, finishing the
    current part before moving to another."""
    n = len(group)
    waiting_children = np.zeros(n, dtype=int)
    for plist in parents:
        for j in plist:
            waiting_children[j] += 1
    usable = waiting_children == 0
    if not usable.any():  # a containment cycle (should not happen): take anything
        usable[:] = True
    done = np.zeros(n, dtype=bool)
    members: dict[int, list[int]] = {}
    for i, part in enumerate(part_of.tolist()):
        members.setdefault(part, []).append(i)
    left = {part: len(items) for part, items in members.items()}
    index = _EntryIndex(group)
    order: list[int] = []
    entries: list[int] = []
    position, current = head, -1
    for _ in range(n):
        found = None
        if left.get(current, 0) > 0:
            found = _nearest_in_part(group, members[current], usable, done, position, index)
        if found is None:
            found = index.nearest(position, usable)
        item, entry = found
        done[item] = True
        usable[item] = False
        index.remove(item)
        current = int(part_of[item])
        left[current] -= 1
        for j in parents[item]:
            waiting_children[j] -= 1
            usable[j] = waiting_children[j] == 0 and not done[j]
        if not usable.any() and not done.all():
            usable = ~done  # a cycle: carry on rather than stall
        order.append(item)
        entries.append(entry)
        position = _entry_exit(group[item], entry)[1]
    return order, entries


def _nearest_in_part(
    group: list[Toolpath], items: list[int], usable: np.ndarray, done: np.ndarray,
    position: np.ndarray, index: _EntryIndex,
) -> tuple[int, int] | None:
    ready = [i for i in items if usable[i] and not done[i]]
    if not ready:
        return None
    if len(ready) > _SMALL_PART:
        mask = np.zeros_like(usable)
        mask[ready] = True
        return index.nearest(position, mask)
    best: tuple[float, int, int] | None = None
    for i in ready:
        points, indices = _candidates(group[i])
        distances = np.hypot(*(points - position).T)
        k = int(np.argmin(distances))
        if best is None or distances[k] < best[0]:
            best = (float(distances[k]), i, int(indices[k]))
    assert best is not None
    return best[1], best[2]


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
            distances, found = self.tree.query(position, k=k)
            found = self.ids[np.atleast_1d(found)[np.atleast_1d(distances) < np.inf]]
            good = found[usable[self.owner[found]]]
            if good.size:
                return int(self.owner[good[0]]), int(self.entry[good[0]])
            if k >= size:
                raise RuntimeError("no usable path left to order")  # a bug, not bad input
            k = min(k * 4, size)


# --- 2-opt over whole parts ------------------------------------------------------------------


def _part_two_opt(
    group: list[Toolpath], parents: list[list[int]], part_of: np.ndarray, order: list[int],
    entries: list[int], head: np.ndarray, deadline: float,
) -> tuple[list[int], list[int]]:
    """Reverse runs of parts, each part keeping its inner order (holes, then the outline).

    A part enters at its first path and leaves at its last, so reversing parts i..j changes
    every transition inside the run: with prefix sums of the forward and backward transition
    lengths, each candidate move still costs O(1).
    """
    runs = _runs(part_of[np.asarray(order)])
    m = len(runs)
    if m < 3 or time.perf_counter() >= deadline:
        return order, entries
    ends = [_entry_exit(group[i], e) for i, e in zip(order, entries, strict=True)]
    ent = np.array([ends[a][0] for a, _ in runs])
    ext = np.array([ends[b - 1][1] for _, b in runs])
    sequence = list(range(m))
    improved = True
    while improved and time.perf_counter() < deadline:
        improved = False
        for i in range(m - 1):
            if i % 32 == 0 and time.perf_counter() >= deadline:
                break
            forward = np.r_[0.0, np.cumsum(np.hypot(*(ext[:-1] - ent[1:]).T))]
            backward = np.r_[0.0, np.cumsum(np.hypot(*(ext[1:] - ent[:-1]).T))]
            j = np.arange(i + 1, m)
            before = head if i == 0 else ext[i - 1]
            after = np.vstack([ent[1:], [np.nan, np.nan]])[j]
            old = (np.hypot(*(ent[i] - before)) + forward[j] - forward[i]
                   + np.nan_to_num(np.hypot(*(after - ext[j]).T)))
            new = (np.hypot(*(ent[j] - before).T) + backward[j] - backward[i]
                   + np.nan_to_num(np.hypot(*(after - ext[i]).T)))
            gain = old - new
            k = int(np.argmax(gain))
            if gain[k] > 1e-6:
                end = int(j[k]) + 1
                sequence[i:end] = sequence[i:end][::-1]
                ent[i:end], ext[i:end] = ent[i:end][::-1].copy(), ext[i:end][::-1].copy()
                improved = True
    new_order = [order[p] for s in sequence for p in range(*runs[s])]
    new_entries = [entries[p] for s in sequence for p in range(*runs[s])]
    if not _respects_containment(new_order, parents):  # a part split in two runs (overlap)
        return order, entries
    return new_order, new_entries


def _runs(labels: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of equal consecutive labels."""
    cuts = np.r_[0, np.flatnonzero(np.diff(labels)) + 1, len(labels)]
    return [(int(a), int(b)) for a, b in itertools.pairwise(cuts.tolist())]


def _respects_containment(order: list[int], parents: list[list[int]]) -> bool:
    position = {item: pos for pos, item in enumerate(order)}
    return all(position[j] > position[i] for i in order for j in parents[i])


# --- 2-opt over single paths -----------------------------------------------------------------


def _two_opt(
    group: list[Toolpath], parents: list[list[int]], order: list[int], entries: list[int],
    head: np.ndarray, deadline: float,
) -> tuple[list[int], list[int]]:
    """Reverse runs of paths while it shortens travel and keeps holes before their parts.

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
