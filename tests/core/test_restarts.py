"""The restart rule serve's children and the device host's machine threads share."""

from __future__ import annotations

from fabqueue.core.restarts import HEALTHY_AFTER_S, MAX_BACKOFF_S, after_death


def test_a_healthy_run_starts_again_at_once_and_forgets_earlier_deaths() -> None:
    assert after_death(HEALTHY_AFTER_S, failures=4) == (0, 0.0)


def test_quick_deaths_wait_twice_as_long_each_time_up_to_the_cap() -> None:
    failures, delays = 0, []
    for _ in range(7):
        failures, delay = after_death(1.0, failures)
        delays.append(delay)
    assert delays == [2.0, 4.0, 8.0, 16.0, MAX_BACKOFF_S, MAX_BACKOFF_S, MAX_BACKOFF_S]
    assert failures == 7
