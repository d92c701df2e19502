"""The pre-slicing filament estimate is within ±15 % of PrusaSlicer's, per printable sample.

Same comparison as bench/bench_estimates.py (which prints the table for RESULTS.md), on the
prusa_mk4 / PLA / normal profile. Samples come from ../shared/samples (skipped when absent).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.bench_estimates import PRINTABLE, SAMPLES, TOLERANCE, compare, scaled_stl
from fabqueue.slicing.profiles import default_profiles_folder, load_profiles

pytestmark = [
    pytest.mark.slicer,
    pytest.mark.skipif(shutil.which("prusa-slicer") is None, reason="PrusaSlicer not installed"),
]

# Outside ±15 % with estimates.py at 727310a; reported to its owner (not ours to edit). Not
# strict: when the estimate improves these pass (XPASS) and the marks can go.
KNOWN_MISSES = {
    "busted.STL": "estimate 0.39 g vs PrusaSlicer 0.68 g (−43 %): PrusaSlicer fills interior "
                  "regions under solid_infill_below_area (70 mm²) solid; small parts print "
                  "almost solid",
    "multibody.stl": "estimate 0.21 g vs PrusaSlicer 0.16 g (+31 %): a 0.16 g part, where the "
                     "purge line and skirt (0.03 g) alone are 20 %",
    "idler_riser.STL": "estimate 12.6 g vs PrusaSlicer 16.4 g (−23 %): 5.3 g of solid infill "
                       "in thin sections and 0.8 g of bridges",
}


def cases() -> list[object]:
    return [
        pytest.param(name, scale, id=name, marks=[pytest.mark.xfail(
            reason=KNOWN_MISSES[name], strict=False)] if name in KNOWN_MISSES else [])
        for name, scale, _ in PRINTABLE
    ]


@pytest.mark.parametrize(("name", "scale"), cases())
def test_grams_within_tolerance_of_prusaslicer(name: str, scale: float, tmp_path: Path) -> None:
    if not (SAMPLES / name).is_file():
        pytest.skip(f"sample {name} not found: ../shared/samples is absent beside the repo")
    profiles = load_profiles(default_profiles_folder())
    model = scaled_stl(name, scale, tmp_path)
    result = compare(model, profiles, "prusa_mk4", "PLA", "normal", tmp_path)
    assert result.slicer_g > 0
    assert result.estimate_ms < 1000  # the point of an estimate: instant at upload
    assert abs(result.grams_error) <= TOLERANCE, (
        f"{name}: estimate {result.estimate_g:.2f} g vs PrusaSlicer {result.slicer_g:.2f} g "
        f"({result.grams_error:+.1%})"
    )
