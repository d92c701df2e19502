"""The spool rules: what is left, enough for a job, what an ended job used, low stock."""

from __future__ import annotations

import pytest

from fabqueue.core.spools import (
    Ending,
    Stock,
    enough,
    low_stock,
    needed,
    remaining_from_weight,
    threshold_for,
    used_grams,
)


def test_weight_less_empty_spool_is_what_is_left() -> None:
    assert remaining_from_weight(1180, 250) == 930.0


def test_weight_never_below_zero_nor_above_the_net_content() -> None:
    assert remaining_from_weight(200, 250) == 0.0
    assert remaining_from_weight(1400, 250, net_g=1000) == 1000.0


@pytest.mark.parametrize(("left", "job", "ok"), [
    (110.0, 100.0, True),   # exactly grams × 1.1
    (109.9, 100.0, False),
    (500.0, 12.5, True),
    (0.0, 1.0, False),
])
def test_enough_means_grams_times_1_1(left: float, job: float, ok: bool) -> None:
    assert enough(left, job) is ok


def test_unknown_grams_do_not_hold_a_job_back() -> None:
    assert enough(None, 100.0) and enough(5.0, None)
    assert needed(100) == 110.0


def test_done_uses_all_sliced_grams() -> None:
    assert used_grams(Ending.DONE, 42.0, progress=37) == 42.0


@pytest.mark.parametrize("ending", ["interrupted", "failed", "cancelled"])
def test_an_unfinished_job_used_its_printed_share(ending: str) -> None:
    assert used_grams(ending, 80.0, progress=25.0) == 20.0


def test_progress_is_clamped_and_missing_progress_used_nothing() -> None:
    assert used_grams("failed", 80.0, progress=130) == 80.0
    assert used_grams("failed", 80.0, progress=-3) == 0.0
    assert used_grams("cancelled", 80.0, progress=None) == 0.0
    assert used_grams("done", None) == 0.0


def test_an_unknown_ending_is_refused() -> None:
    with pytest.raises(ValueError):
        used_grams("running", 10.0, 50)


def test_thresholds_site_material_then_material_then_default() -> None:
    t = {"kc:pla": 900.0, "pla": 500.0}
    assert threshold_for(t, "kc", "pla", 300) == 900.0
    assert threshold_for(t, "lib", "pla", 300) == 500.0
    assert threshold_for(t, "lib", "petg", 300) == 300.0


def test_low_stock_sums_spools_per_material_and_site() -> None:
    spools = [Stock("kc", "pla", 200), Stock("kc", "pla", 250), Stock("kc", "petg", 900),
              Stock("lib", "pla", 100)]
    low = low_stock(spools, {"lib:pla": 50}, default_g=500)
    assert [(x.site, x.material, x.remaining_g, x.threshold_g) for x in low] == [
        ("kc", "pla", 450.0, 500.0)]
