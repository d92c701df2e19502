"""Reading PrusaSlicer's totals and checking that G-code stays inside the printer."""

from __future__ import annotations

from pathlib import Path

import pytest

from fabqueue.slicing.gcode_meta import parse_duration, parse_totals

TOTALS_BLOCK = """\
M84
; filament used [mm] = 8926.33
; filament used [cm3] = 21.47
; filament used [g] = 26.62
; filament cost = 0.67
; total filament used [g] = 26.62
; total filament cost = 0.67
; estimated printing time (normal mode) = 1d 1h 57m 48s
; estimated printing time (silent mode) = 2h 0m 45s

; prusaslicer_config = begin
; filament_cost = 25
; prusaslicer_config = end
"""


def test_durations_with_days() -> None:
    assert parse_duration("1d 2h 3m 4s") == 86400 + 7200 + 180 + 4
    assert parse_duration("17m 52s") == 17 * 60 + 52
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_totals_are_read_from_the_tail_of_a_large_file(tmp_path: Path) -> None:
    gcode = tmp_path / "big.gcode"
    # 5 MB of moves, including a misleading comment far from the end.
    body = "; filament used [g] = 999\n" + "G1 X10 Y10 E0.1\n" * 320_000
    gcode.write_text(body + TOTALS_BLOCK)
    totals = parse_totals(gcode)  # the tail only: its speed is in bench/bench_unit_timings.py
    assert totals == {
        "filament_mm": 8926.33,
        "filament_cm3": 21.47,
        "filament_g": 26.62,
        "cost": 0.67,
        "estimated_seconds": 86400 + 3600 + 57 * 60 + 48,
        "estimated_seconds_silent": 2 * 3600 + 45,
    }


def test_no_totals_gives_empty_dict(tmp_path: Path) -> None:
    gcode = tmp_path / "hand.gcode"
    gcode.write_text("G28\nG1 X10\n")
    assert parse_totals(gcode) == {}
