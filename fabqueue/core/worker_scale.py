"""How many analysis/slicing workers ``serve`` runs: ``warm_workers`` always (an upload's
verdict never waits for a process to start), more while jobs wait in the queues, up to
``workers``. An idle lab then holds one worker's ~70 MB instead of two (bench/RESULTS.md,
"Many machines per process"), and a long slicing does not hold the next upload's verdict
back: a job that waited ``WAITED_S`` starts a helper, which leaves when the queues are empty
(RQ's burst mode)."""

from __future__ import annotations

#: a job waiting this long in a queue means every running worker is busy: an idle one takes
#: a new job within milliseconds
WAITED_S = 1.0
#: a helper needs ~1–2 s to start (imports): don't start another for the same wait before
#: the first could have taken it
HELPER_START_S = 5.0


def warm_count(warm_workers: int, workers: int) -> int:
    """Workers kept running while idle: at least one, at most ``workers``."""
    return max(1, min(warm_workers, workers))


def start_helper(*, waiting_since: float | None, now: float, running: int, most: int,
                 last_helper_at: float | None) -> bool:
    """Whether to start a helper worker now. ``waiting_since``: when the queues were first
    seen holding jobs (None: they are empty); ``running``: workers alive, warm and helpers."""
    if waiting_since is None or running >= most:
        return False
    if now - waiting_since < WAITED_S:
        return False
    return last_helper_at is None or now - last_helper_at >= HELPER_START_S
