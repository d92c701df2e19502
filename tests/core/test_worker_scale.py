"""When serve starts a helper worker (core.worker_scale): only for jobs that waited, never
beyond FABQUEUE_WORKERS, not twice for the same wait."""

from __future__ import annotations

from fabqueue.core.worker_scale import HELPER_START_S, WAITED_S, start_helper, warm_count


def test_warm_workers_are_at_least_one_and_at_most_the_maximum() -> None:
    assert warm_count(1, 2) == 1
    assert warm_count(0, 2) == 1
    assert warm_count(5, 2) == 2
    assert warm_count(2, 0) == 1


def test_a_helper_only_for_jobs_that_waited_while_room_is_left() -> None:
    kw = {"running": 1, "most": 2, "last_helper_at": None}
    assert not start_helper(waiting_since=None, now=100.0, **kw)
    assert not start_helper(waiting_since=100.0, now=100.0 + WAITED_S / 2, **kw)
    assert start_helper(waiting_since=100.0, now=100.0 + WAITED_S, **kw)
    assert not start_helper(waiting_since=100.0, now=200.0, running=2, most=2,
                            last_helper_at=None)


def test_no_second_helper_while_the_first_is_starting() -> None:
    kw = {"waiting_since": 100.0, "running": 1, "most": 3}
    assert not start_helper(now=103.0, last_helper_at=101.0, **kw)
    assert start_helper(now=101.0 + HELPER_START_S, last_helper_at=101.0, **kw)
