"""The staff pages' fast queue order is exactly the dispatcher's order."""

from __future__ import annotations

import random

from fabqueue.core.scheduling import Candidate, order
from fabqueue.web.pages.queueinfo import fast_order


def test_fast_order_matches_the_dispatchers_order() -> None:
    rng = random.Random(7)
    for _ in range(200):
        n = rng.randint(0, 60)
        jobs = [Candidate(job_id=i, owner_id=rng.randint(1, 6),
                          batch_id=rng.choice([None, None, 1, 2]), material="PLA",
                          priority=rng.choice([0, 0, 0, 1, 2, -1]), fits=("p",),
                          pinned_device=None) for i in rng.sample(range(1000), n)]
        recent = {f"owner:{o}": rng.randint(0, 3) for o in range(1, 7)}
        assert [c.job_id for c in fast_order(jobs, recent)] == \
            [c.job_id for c in order(jobs, recent)]
