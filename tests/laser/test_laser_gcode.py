"""GRBL laser-mode G-code: power scaling, modes, feeds, passes, placement, framing, timings."""

from __future__ import annotations

import re

import numpy as np
import pytest

from fabqueue.core.findings import Refused
from fabqueue.core.laser_settings import check_laser_settings
from fabqueue.core.specs import LaserSpec
from fabqueue.laser.gcode import (
    MAX_LINE,
    format_number,
    frame_program,
    generate_gcode,
    power_to_s,
)
from fabqueue.laser.materials import LaserMaterial, LaserOperation, Operation
from fabqueue.laser.paths import Toolpath
from fabqueue.laser.planning import plan_toolpaths

LASER = LaserSpec(id="diode", site="lab", bed_mm=(400.0, 300.0), max_power_s=1000.0,
                  max_speed_mm_min=6000.0)
MATERIAL = LaserMaterial(
    id="test", name="Test", thickness_mm=3.0, sheet_mm=(600.0, 400.0), price_per_sheet=4.0,
    operations={
        Operation.CUT: LaserOperation(300, 90, passes=2, air_assist=True),
        Operation.SCORE: LaserOperation(1500, 40, passes=1),
        Operation.ENGRAVE: LaserOperation(9000, 25, passes=1, line_interval_mm=0.1),
    },
)
MOVE = re.compile(r"^G([01]) X(-?[\d.]+) Y(-?[\d.]+)(?: F([\d.]+) S([\d.]+))?$")


def square(x: float, y: float, size: float) -> Toolpath:
    pts = np.array([[x, y], [x + size, y], [x + size, y + size], [x, y + size]], dtype=float)
    return Toolpath(Operation.CUT, "#ff0000", pts, True)


def program_for(paths: list[Toolpath], **kwargs):
    return generate_gcode(plan_toolpaths(paths), MATERIAL, LASER, **kwargs)


def moves(lines: list[str]) -> list[tuple[str, float, float, str | None, str | None]]:
    result = []
    for text in lines:
        match = MOVE.match(text)
        if match:
            g, x, y, f, s = match.groups()
            result.append((g, float(x), float(y), f, s))
    return result


@pytest.mark.parametrize(("value", "text"), [
    (12.5, "12.5"), (3.0, "3"), (-0.125, "-0.125"), (1.23456, "1.235"), (-0.0001, "0"),
    (100.10, "100.1"), (0.0, "0"),
])
def test_numbers_are_compact(value: float, text: str) -> None:
    assert format_number(value) == text


def test_power_is_scaled_to_the_laser_maximum() -> None:
    assert power_to_s(90, 1000) == 900
    assert power_to_s(40, 255) == pytest.approx(102)
    assert power_to_s(150, 1000) == 1000  # clamped


def test_header_dynamic_power_and_laser_off_at_the_end() -> None:
    program = program_for([square(10, 10, 20)])
    assert program.lines[:3] == ["G21", "G90", "M5"]
    assert "M4 S0" in program.lines
    assert program.lines[-1] == "M5"
    assert all(len(line) <= MAX_LINE for line in program.lines)
    assert not any("M3" in line for line in program.lines)  # never constant power


def test_feeds_power_and_passes_per_operation() -> None:
    paths = [square(0, 0, 20), Toolpath(Operation.SCORE, "#0000ff",
                                        np.array([[5.0, 5.0], [15.0, 5.0]]), False)]
    program = program_for(paths)
    cuts = [m for m in moves(program.lines) if m[0] == "1" and m[3] is not None]
    # Score at F1500 S400, then cut at F300 S900 (90 % of $30=1000); F and S are modal, so
    # they are written only when they change.
    assert [(m[3], m[4]) for m in cuts] == [("1500", "400"), ("300", "900")]
    text = program.lines
    cut_section = text[text.index(next(t for t in text if t.startswith("; cut"))):]
    assert sum(t.startswith("G1") for t in cut_section) == 2 * 4  # two passes of a square
    assert text.index("M8") > text.index("M9")  # air on for the cut, off for the score
    assert program.cut_length_mm == pytest.approx(10 + 2 * 80)


def test_feed_is_capped_at_the_laser_speed() -> None:
    engrave = Toolpath(Operation.ENGRAVE, "#000000", np.array([[0.0, 0.0], [10.0, 0.0]]), False)
    program = program_for([engrave])
    (first,) = [m for m in moves(program.lines) if m[3] is not None]
    assert first[3] == "6000" and first[4] == "250"


def test_closed_contours_return_to_their_start_and_travel_is_g0() -> None:
    program = program_for([square(0, 0, 10)])
    path = moves(program.lines)
    assert path[0][0] == "0"  # laser-off travel to the start
    start = path[0][1:3]
    first_pass = path[1:5]
    assert [m[0] for m in first_pass] == ["1"] * 4
    assert first_pass[-1][1:3] == start


def test_job_is_placed_at_the_chosen_origin() -> None:
    program = program_for([square(50, 60, 10)], origin=(5.0, 7.0))
    xs = [m[1] for m in moves(program.lines)]
    ys = [m[2] for m in moves(program.lines)]
    assert (min(xs), min(ys), max(xs), max(ys)) == (5, 7, 15, 17)
    assert program.bbox == (5.0, 7.0, 15.0, 17.0)


def test_a_job_off_the_bed_is_an_error() -> None:
    with pytest.raises(Refused) as caught:
        program_for([square(0, 0, 350)])  # 350 mm tall on a 300 mm bed
    assert caught.value.finding.code == "laser_out_of_bed"
    assert caught.value.finding.params["laser"] == "diode"
    with pytest.raises(Refused):
        program_for([square(0, 0, 10)], origin=(395.0, 0.0))


def test_timings_add_up_and_count_down() -> None:
    program = program_for([square(0, 0, 30)])
    assert len(program.line_seconds) == len(program.lines)
    assert program.total_seconds == pytest.approx(sum(program.line_seconds))
    # Two passes of 120 mm at 300 mm/min = 48 s, plus a little travel.
    assert 48 <= program.total_seconds < 50
    assert program.seconds_left(0) == pytest.approx(program.total_seconds)
    assert program.seconds_left(len(program.lines)) == 0


def test_frame_program_traces_the_box_with_the_beam_off() -> None:
    program = frame_program((10.0, 20.0, 110.0, 70.0), 3000, laser=LASER)
    assert "M4 S0" not in program.lines and "M3" not in program.text
    assert program.lines[-1] == "M5"
    path = moves(program.lines)
    corners = {(m[1], m[2]) for m in path}
    assert corners == {(10, 20), (110, 20), (110, 70), (10, 70)}
    assert all(m[4] in (None, "0") for m in path)  # S0 wherever a power is given
    assert program.lines.index("M5") < program.lines.index(next(
        line for line in program.lines if line.startswith("G1")))
    assert program.cut_length_mm == 0
    with pytest.raises(Refused):
        frame_program((0.0, 0.0, 500.0, 10.0), 3000, laser=LASER)


def test_laser_mode_check_for_the_driver() -> None:
    assert check_laser_settings({"$32": "1", "$30": "1000"}, LASER) == []
    problems = {f.code for f in check_laser_settings({"$32": "0", "$30": "255"}, LASER)}
    assert problems == {"laser_mode_off", "laser_power_scale"}
