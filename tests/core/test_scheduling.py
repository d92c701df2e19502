"""The pure scheduler: compatibility, priority, fair share, exclusivity, forecasts."""

from __future__ import annotations

from fabqueue.core.scheduling import (
    Candidate,
    MachineCaps,
    compatible,
    corrected_estimate,
    expected_times,
    may_start_heating,
    order,
    pick,
)


def cand(job: int, owner: int = 1, *, material: str = "PLA", priority: int = 0,
         fits: tuple[str, ...] = ("a", "b"), pinned: str | None = None,
         batch: int | None = None, seconds: float | None = None) -> Candidate:
    return Candidate(job, owner, batch, material, priority, fits, pinned, seconds)


A = MachineCaps("a", ("PLA",))
B = MachineCaps("b", ("PLA", "PETG"))


def test_compatibility_checks_material_fit_pin_and_loaded_spool() -> None:
    assert compatible(cand(1), A)
    assert not compatible(cand(1, material="PETG", fits=("b",)), A)
    assert not compatible(cand(1, fits=("b",)), A)  # too big for a
    assert not compatible(cand(1, pinned="b"), A)
    assert not compatible(cand(1), MachineCaps("a", ("PLA", "PETG"), loaded_material="PETG"))


def test_round_robin_across_owners_not_fifo() -> None:
    queue = [cand(1, owner=7), cand(2, owner=7), cand(3, owner=7), cand(4, owner=8),
             cand(5, owner=9)]
    assert [c.job_id for c in order(queue, {})] == [1, 4, 5, 2, 3]


def test_recent_starts_and_classes_count_for_fair_share() -> None:
    queue = [cand(1, owner=7), cand(2, owner=8, batch=3), cand(3, owner=9, batch=3)]
    picked = [c.job_id for c in order(queue, {"owner:7": 1})]
    assert picked == [2, 1, 3]  # the class had nothing recently; its second pupil waits


def test_priority_wins_over_fair_share() -> None:
    queue = [cand(1, owner=7), cand(2, owner=7, priority=10)]
    assert order(queue, {"owner:7": 5})[0].job_id == 2


def test_own_queue_before_pool_and_exclusive_jobs_first() -> None:
    own = [cand(9, pinned="b", fits=("b",))]
    pool = [cand(1), cand(2, material="PETG", fits=("b",))]
    assert pick(own, pool, B, {}).job_id == 9  # type: ignore[union-attr]
    assert pick([], pool, B, {}).job_id == 2  # type: ignore[union-attr]  # only b can print PETG
    assert pick([], pool, A, {}).job_id == 1  # type: ignore[union-attr]
    assert pick([], [cand(2, material="PETG", fits=("b",))], A, {}) is None


def test_heating_limit_and_forecast_and_learned_correction() -> None:
    assert may_start_heating(1, 2) and not may_start_heating(2, 2)
    times = expected_times([cand(1, seconds=100), cand(2, seconds=50), cand(3, seconds=10)],
                           [0.0, 30.0], now=0.0)
    assert times[1] == (0.0, 100.0)
    assert times[2] == (30.0, 80.0)
    assert times[3] == (80.0, 90.0)
    assert corrected_estimate(100, [1.2, 1.1, 1.3]) == 120
    assert corrected_estimate(100, []) == 100
    assert corrected_estimate(100, [50.0]) == 100  # absurd ratios are ignored
