"""When a worker that died starts again (``serve``'s child processes, the device host's
machine threads): at once after a healthy run, otherwise after a back-off that doubles with
each quick death, so a worker that cannot start does not spin."""

from __future__ import annotations

HEALTHY_AFTER_S = 30.0  # a worker that ran this long starts again at once when it dies
MAX_BACKOFF_S = 30.0


def after_death(lived_s: float, failures: int) -> tuple[int, float]:
    """``(failures, delay_s)`` for a worker that died after running ``lived_s`` seconds,
    ``failures`` quick deaths before this one."""
    failures = 0 if lived_s >= HEALTHY_AFTER_S else failures + 1
    return failures, 0.0 if failures == 0 else min(MAX_BACKOFF_S, 2.0 ** failures)
