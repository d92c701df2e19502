"""The pre-slicing estimate against PrusaSlicer's own figures, per printable sample.

Same comparison as bench/bench_estimates.py (which prints the table for RESULTS.md): the
estimate FabQueue shows at upload (``analyse_mesh``) against PrusaSlicer sliced with the same
prusa_mk4 / PLA profile, at normal and fine quality. Every sample must pass: no known misses.
Grams within ±5 %, print time within ±10 % (bench_estimates' TOLERANCE and TIME_TOLERANCE,
issue 20's aim; grams compared from filament lengths, the most precise figure on both sides:
PrusaSlicer's "filament used [mm]", FabQueue's metres). Samples come from ../shared/samples
(skipped when absent).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.bench_estimates import (
    PRINTABLE,
    SAMPLES,
    TIME_TOLERANCE,
    TOLERANCE,
    compare,
    scaled_stl,
)
from fabqueue.slicing.profiles import default_profiles_folder, load_profiles
from tests.conftest import needs_prusaslicer

pytestmark = [
    pytest.mark.slicer,
    needs_prusaslicer,
]


@pytest.mark.parametrize(("name", "scale"), [pytest.param(name, scale, id=name)
                                             for name, scale, _ in PRINTABLE])
@pytest.mark.parametrize("quality", ["normal", "fine"])
def test_estimate_within_tolerance_of_prusaslicer(name: str, scale: float, quality: str,
                                                  tmp_path: Path) -> None:
    if not (SAMPLES / name).is_file():
        pytest.skip(f"sample {name} not found: ../shared/samples is absent beside the repo")
    profiles = load_profiles(default_profiles_folder())
    model = scaled_stl(name, scale, tmp_path)
    result = compare(model, profiles, "prusa_mk4", "PLA", quality, tmp_path)
    assert result.slicer_g > 0 and result.slicer_s > 0
    assert abs(result.grams_error) <= TOLERANCE, (
        f"{name} ({quality}): estimate {result.estimate_g:.2f} g vs PrusaSlicer "
        f"{result.slicer_g:.2f} g ({result.grams_error:+.1%})"
    )
    assert abs(result.seconds_error) <= TIME_TOLERANCE, (
        f"{name} ({quality}): estimate {result.estimate_s / 60:.1f} min vs PrusaSlicer "
        f"{result.slicer_s / 60:.1f} min ({result.seconds_error:+.1%})"
    )
