"""Who goes next on which machine (pure).

A machine takes from its own queue first (jobs pinned to it), then from its pool. Among the
jobs it can run, staff priority wins; then fair share: the owner (or class) that has had the
fewest jobs started recently goes first, so one resident's twenty parts don't block everyone;
then first come, first served.
"""

from __future__ import annotations

import heapq
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    job_id: int
    owner_id: int
    batch_id: int | None
    material: str
    priority: int
    fits: tuple[str, ...]  # device ids the analysis says it fits
    pinned_device: str | None
    estimated_seconds: float | None = None

    @property
    def share_key(self) -> str:
        """Fair share is per class for a batch, per person otherwise."""
        return f"batch:{self.batch_id}" if self.batch_id else f"owner:{self.owner_id}"


@dataclass(frozen=True)
class MachineCaps:
    id: str
    materials: tuple[str, ...]
    loaded_material: str | None = None


def compatible(c: Candidate, m: MachineCaps) -> bool:
    if c.pinned_device and c.pinned_device != m.id:
        return False
    if c.material not in m.materials:
        return False
    if m.loaded_material and c.material != m.loaded_material:
        return False
    return m.id in c.fits


def order(candidates: Sequence[Candidate], recent_starts: Mapping[str, int]) -> list[Candidate]:
    """Queue order: priority, then fair share (fewest recent starts), then age.

    Round robin: after each pick the picked owner (or class) counts one more start. One heap
    per priority keeps it O(n log n): staff pages order hundreds of jobs per request."""
    started: defaultdict[str, int] = defaultdict(int, recent_starts)
    by_priority: dict[int, dict[str, deque[Candidate]]] = defaultdict(lambda: defaultdict(deque))
    for c in sorted(candidates, key=lambda c: c.job_id):
        by_priority[c.priority][c.share_key].append(c)
    out: list[Candidate] = []
    for priority in sorted(by_priority, reverse=True):
        queues = by_priority[priority]
        heap = [(started[key], q[0].job_id, key) for key, q in queues.items()]
        heapq.heapify(heap)
        while heap:
            _, _, key = heapq.heappop(heap)
            out.append(queues[key].popleft())
            started[key] += 1
            if queues[key]:
                heapq.heappush(heap, (started[key], queues[key][0].job_id, key))
    return out


def pick(
    own: Sequence[Candidate],
    pool: Sequence[Candidate],
    machine: MachineCaps,
    recent_starts: Mapping[str, int],
) -> Candidate | None:
    """The next job for ``machine``: its own queue first, then the pool."""
    for source in (own, pool):
        ok = [c for c in source if compatible(c, machine)]
        if not ok:
            continue
        # A job only this machine can run goes before one any machine could take (at the
        # same priority): otherwise a PETG job would wait while this printer prints PLA
        # that the PLA-only printer beside it could have done.
        top = max(c.priority for c in ok)
        exclusive = [c for c in ok if c.priority == top and set(c.fits) <= {machine.id}]
        return order(exclusive or ok, recent_starts)[0]
    return None


def may_start_heating(heating_at_site: int, limit: int) -> bool:
    """Staggered start: at most ``limit`` printers of a site heat at once."""
    return heating_at_site < max(1, limit)


def expected_times(
    queue: Sequence[Candidate], machines_free_at: Sequence[float], now: float,
    default_seconds: float = 3600.0,
) -> dict[int, tuple[float, float]]:
    """Expected (start, finish) per job if each goes to the machine that frees up first."""
    free = sorted(max(now, t) for t in machines_free_at) or [now]
    out: dict[int, tuple[float, float]] = {}
    for c in queue:
        start = free.pop(0)
        finish = start + (c.estimated_seconds or default_seconds)
        out[c.job_id] = (start, finish)
        free.append(finish)
        free.sort()
    return out


def corrected_estimate(estimate_s: float, ratios: Sequence[float]) -> float:
    """An estimate corrected by a machine's recent actual/estimated ratios (median)."""
    usable = sorted(r for r in ratios if 0.2 <= r <= 5.0)
    if not usable:
        return estimate_s
    mid = len(usable) // 2
    median = usable[mid] if len(usable) % 2 else (usable[mid - 1] + usable[mid]) / 2
    return estimate_s * median
