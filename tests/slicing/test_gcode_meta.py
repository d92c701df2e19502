"""Reading PrusaSlicer's totals and checking that G-code stays inside the printer."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fabqueue.slicing.gcode_meta import check_bounds, parse_duration, parse_totals

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
    started = time.perf_counter()
    totals = parse_totals(gcode)
    assert time.perf_counter() - started < 0.1  # the tail only, not 5 MB
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


def test_moves_inside_the_volume_are_fine(tmp_path: Path) -> None:
    gcode = tmp_path / "ok.gcode"
    gcode.write_text(
        "G28 ; home\nG90\nG1 X10 Y10 Z0.2 F3000\nG1 X240 Y200 E3 ; corner\n"
        "G91\nG1 Z10\nG90\nG1 X0 Y0 ; X999 in a comment is ignored\n"
    )
    assert check_bounds(gcode, (250, 210, 220)) == []


def test_moves_outside_the_bed_are_reported_with_their_line(tmp_path: Path) -> None:
    gcode = tmp_path / "bad.gcode"
    gcode.write_text(
        "G28\nG90\nG1 X10 Y10 Z0.2\n"
        "G1 X260 Y10\n"  # line 4: beyond X 250
        "G1 X300\n"  # further
        "G91\nG1 Y-20\nG90\n"  # relative: Y 10 - 20 = -10
        "G1 Z230\n"  # line 9: above 220
    )
    problems = check_bounds(gcode, (250, 210, 220))
    assert len(problems) == 3
    assert problems[0].startswith("X goes to 300.0 mm") and "line 4" in problems[0]
    assert problems[1].startswith("Y goes to -10.0 mm") and "line 7" in problems[1]
    assert problems[2].startswith("Z goes to 230.0 mm") and "line 9" in problems[2]


def test_g92_shifts_the_coordinates(tmp_path: Path) -> None:
    gcode = tmp_path / "g92.gcode"
    # After G92 X0 at physical X 200, "X100" means physical X 300: outside a 250 bed.
    gcode.write_text("G28\nG1 X200\nG92 X0\nG1 X100\n")
    problems = check_bounds(gcode, (250, 210, 220))
    assert problems == ["X goes to 300.0 mm, beyond the bed of 250 mm (first at line 4)"]
    gcode.write_text("G28\nG1 X200\nG92 X0\nG1 X40\n")
    assert check_bounds(gcode, (250, 210, 220)) == []


def test_ten_megabytes_is_checked_quickly(tmp_path: Path) -> None:
    gcode = tmp_path / "ten.gcode"
    lines = ["G28\nG90\n"] + [f"G1 X{i % 200 + 0.5:.3f} Y{i % 180:.3f} E0.0123 ; move\n"
                              for i in range(330_000)]
    gcode.write_text("".join(lines))
    assert gcode.stat().st_size > 10_000_000
    started = time.perf_counter()
    assert check_bounds(gcode, (220, 220, 250)) == []
    assert time.perf_counter() - started < 5.0
