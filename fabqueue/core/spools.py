"""Spools (pure): what is left on one, whether it holds enough for a job, what an ended job
used, and when a site runs low on a material.

Plain numbers in, plain numbers out: the store, the queue and the web all ask these, so a
page preview and the device worker's gate never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

#: A job needs this much more than its sliced grams: purge lines, a failed first layer
#: retried by the host, the slicer's estimate being a little short.
MARGIN = 1.1


class Ending(StrEnum):
    """How a job ended, as far as material goes."""

    DONE = "done"
    INTERRUPTED = "interrupted"
    FAILED = "failed"
    CANCELLED = "cancelled"


def remaining_from_weight(gross_g: float, empty_g: float, net_g: float | None = None) -> float:
    """Grams left on a spool weighed on a scale: the gross weight less the empty spool,
    never below zero and (when the net content is known) never above it: a scale that reads
    a hand resting on the spool does not create filament."""
    left = max(0.0, float(gross_g) - float(empty_g))
    if net_g is not None and net_g > 0:
        left = min(left, float(net_g))
    return round(left, 1)


def needed(job_g: float) -> float:
    """Grams a spool must hold to start a job of ``job_g`` sliced grams."""
    return round(max(0.0, float(job_g)) * MARGIN, 1)


def enough(remaining_g: float | None, job_g: float | None) -> bool:
    """Does the spool hold enough for the job (remaining ≥ grams × 1.1)? A spool nobody
    weighed, or a job without sliced grams, is not a reason to hold a job back."""
    if remaining_g is None or job_g is None:
        return True
    return float(remaining_g) >= needed(job_g)


def used_grams(ending: Ending | str, sliced_g: float | None,
               progress: float | None = None) -> float:
    """Grams an ended job took off its spool: all of the sliced grams when done; the share
    printed (the host's progress, 0–100 %) when interrupted, failed or cancelled. Progress
    outside 0–100 (a host's rounding, a missing report) is clamped; no progress is none."""
    if not sliced_g or sliced_g <= 0:
        return 0.0
    if Ending(ending) == Ending.DONE:
        return round(float(sliced_g), 1)
    share = min(100.0, max(0.0, float(progress or 0.0))) / 100.0
    return round(float(sliced_g) * share, 1)


@dataclass(frozen=True)
class Stock:
    """One spool as the low-stock rule sees it."""

    site: str
    material: str
    remaining_g: float


@dataclass(frozen=True)
class Low:
    site: str
    material: str
    remaining_g: float
    threshold_g: float


def threshold_for(thresholds: Mapping[str, float], site: str, material: str,
                  default_g: float) -> float:
    """The low-stock limit for a material at a site: ``"site:material"`` first, then
    ``"material"``, then the default."""
    for key in (f"{site}:{material}", material):
        if key in thresholds:
            return float(thresholds[key])
    return float(default_g)


def low_stock(spools: Iterable[Stock], thresholds: Mapping[str, float],
              default_g: float) -> list[Low]:
    """Materials whose spools at a site hold less, together, than their limit; sorted by
    site and material. A material with no spools at a site is not reported (the site does
    not stock it)."""
    totals: dict[tuple[str, str], float] = {}
    for sp in spools:
        key = (sp.site, sp.material)
        totals[key] = totals.get(key, 0.0) + max(0.0, sp.remaining_g)
    out = []
    for (site, material), total in sorted(totals.items()):
        limit = threshold_for(thresholds, site, material, default_g)
        if total < limit:
            out.append(Low(site, material, round(total, 1), limit))
    return out
