"""The dispatcher's queue order (one heap per priority) is exactly the plain round robin."""

from __future__ import annotations

import random

from fabqueue.core.scheduling import Candidate, order


def reference_order(candidates: list[Candidate], recent: dict[str, int]) -> list[Candidate]:
    """The definition, O(n²): take the best by (−priority, starts so far, age), count it."""
    started = dict(recent)
    remaining = sorted(candidates, key=lambda c: c.job_id)
    out = []
    while remaining:
        best = min(remaining, key=lambda c: (-c.priority, started.get(c.share_key, 0), c.job_id))
        out.append(best)
        remaining.remove(best)
        started[best.share_key] = started.get(best.share_key, 0) + 1
    return out


def test_order_matches_the_plain_round_robin() -> None:
    rng = random.Random(7)
    for _ in range(200):
        n = rng.randint(0, 60)
        jobs = [Candidate(job_id=i, owner_id=rng.randint(1, 6),
                          batch_id=rng.choice([None, None, 1, 2]), material="PLA",
                          priority=rng.choice([0, 0, 0, 1, 2, -1]), fits=("p",),
                          pinned_device=None) for i in rng.sample(range(1000), n)]
        recent = {f"owner:{o}": rng.randint(0, 3) for o in range(1, 7)}
        assert [c.job_id for c in order(jobs, recent)] == \
            [c.job_id for c in reference_order(jobs, recent)]
