"""The G-code check (pure): compact words, comments, state, arcs, commands, temperatures."""

from __future__ import annotations

import pytest

from fabqueue.core.gcode import MachineKind, MachineLimits, check_program

PRINTER = MachineLimits(MachineKind.PRINTER, (250.0, 210.0, 220.0), nozzle_max_c=225,
                        bed_max_c=70)
LASER = MachineLimits(MachineKind.LASER, (400.0, 300.0, 0.0), max_power_s=1000)
START = ["G90", "M83", "M140 S60", "M104 S215", "G28", "G92 E0", "G1 Z0.3 F720"]


def problem(lines: list[str], limits: MachineLimits = PRINTER) -> tuple[str, int] | None:
    found = check_program(lines, limits)
    return None if found is None else (found.code, found.params["line"])


def test_a_plain_program_passes() -> None:
    lines = [*START, "G1 X5 Y5 F6000", "G1 X60 E6 F1000", "M106 S255", "G2 X70 Y5 I5 J0",
             "M117 M500 printing", "G1 X10 Y10 ; X999 is only a comment", "M73 P50 R3",
             "G28 X Y", "M84"]
    assert check_program(lines, PRINTER) is None


@pytest.mark.parametrize("line", [
    "G1X999Y999Z999", "G0\tX-500", "N10 G1 Z-50*17", "g1 x999", "G1 Y 300", "G01 X+251",
    "G1 Z-0.2", "X999",
])
def test_compact_or_odd_spellings_are_still_moves(line: str) -> None:
    assert problem([*START, line]) == ("gcode_outside", len(START) + 1)


@pytest.mark.parametrize("line", [
    "G53 G0 X0", "M92 E9999", "M500", "M501", "M502", "M211 S0", "M851 Z-5", "M206 Z-5",
    "M290 Z-1", "M303 E0 S290 C8", "M997", "M999", "G10 L20 P1 X0", "G54", "M28 evil.g",
    "M112", "M3 S1000", "G1 X10 A5", "$H", "#1=5", "M862.3 P1", "G1 X\uff11\uff10",
    "G1 X10 \u017f5",
])
def test_commands_outside_the_list_are_refused(line: str) -> None:
    found = check_program([*START, line], PRINTER)
    assert found is not None and found.params["line"] == len(START) + 1
    assert found.code in ("gcode_command_refused", "gcode_word_refused", "gcode_unreadable",
                          "gcode_persistent_setting")


def test_temperatures_follow_the_material_limit() -> None:
    assert problem([*START, "M104 S290"]) == ("gcode_temperature", 8)
    assert problem([*START, "M109 R226"]) == ("gcode_temperature", 8)
    assert problem([*START, "M190 S71"]) == ("gcode_temperature", 8)
    assert problem([*START, "M104 S-5"]) == ("gcode_temperature", 8)
    found = check_program(["M104 S290"], PRINTER)
    assert found is not None and found.render() == (
        "Line 1 heats the nozzle to 290.0 °C; the limit for this material is 225 °C.")
    assert problem([*START, "M104 S225", "M140 S70"]) is None


def test_tools_beyond_the_count() -> None:
    assert problem([*START, "T0"]) is None
    assert problem([*START, "T1"]) == ("gcode_tool", 8)
    assert problem([*START, "M104 T1 S200"]) == ("gcode_tool", 8)


def test_relative_units_and_offsets_are_followed() -> None:
    assert problem([*START, "G91", "G1 X100", "G1 X100", "G1 X100"]) == ("gcode_outside", 11)
    assert problem([*START, "G20", "G1 X9"]) is None  # 228.6 mm: fits
    # 10 inches is 254 mm: beyond the 250 mm bed
    assert problem([*START, "G20", "G1 X10"]) == ("gcode_outside", 9)
    assert problem([*START, "G92 X-200", "G1 X100"]) == ("gcode_outside", 9)
    assert problem(["G91", "G1 Z-50"]) == ("gcode_unknown_position", 2)
    assert problem(["G92 Z50", "G1 Z0"]) == ("gcode_unknown_offset", 1)


def test_arcs_are_checked_over_their_sweep() -> None:
    base = [*START, "G1 X10 Y100"]
    # From (10, 100) to (10, 0) around (10, 50): clockwise bulges to X = 60 (inside),
    # counter-clockwise to X = -40 (outside); the end points are inside either way.
    assert problem([*base, "G2 X10 Y0 I0 J-50"]) is None
    assert problem([*base, "G3 X10 Y0 I0 J-50"]) == ("gcode_outside", 9)
    assert problem([*base, "G2 X10 Y0 R50"]) is None
    assert problem([*base, "G3 X10 Y0 R50"]) == ("gcode_outside", 9)
    # Same start and end: a full circle, to X = -50 or to X = 70.
    assert problem([*base, "G3 X10 Y100 I-30 J0"]) == ("gcode_outside", 9)
    assert problem([*base, "G2 X10 Y100 I30 J0"]) is None
    assert problem([*base, "G2 X10 Y0"]) == ("gcode_bad_arc", 9)
    assert problem([*base, "G2 X10 Y0 R10"]) == ("gcode_bad_arc", 9)


def test_comments_and_laser_rules() -> None:
    program = ["G21", "G90", "M5", "G0 X10 Y10", "M4 S0", "G1 X50 Y10 S800 F1200 (cut)",
               "G2 X50 Y50 I0 J20", "M5", "M9", "M2"]
    assert check_program(program, LASER) is None
    assert problem([*program[:4], "M3 S2000"], LASER) == ("gcode_power", 5)
    assert problem([*program[:4], "G1 X10 Z-3"], LASER) == ("gcode_outside", 5)
    assert problem([*program[:4], "$32=0"], LASER) == ("gcode_unreadable", 5)
    assert problem([*program[:4], "G28"], LASER) == ("gcode_command_refused", 5)
    assert problem([*program[:4], "G1 X10 E5"], LASER) == ("gcode_word_refused", 5)
    assert problem([*program[:4], "G1 X10 (never closed"], LASER) == ("gcode_unreadable", 5)
    # Marlin would read the X999 inside the parentheses: a printer refuses them.
    assert problem([*START, "G1 (X999) X10"]) == ("gcode_unreadable", 8)
    assert problem([*START, "G1 X10 X999"]) == ("gcode_repeated_word", 8)
    assert problem([*START, "G0 G1 X10"]) == ("gcode_two_commands", 8)
    # GRBL reads several modal groups on one line: the laser keeps that, one move at most.
    assert problem([*program[:4], "G90 G1 X20 Y20"], LASER) is None
    assert problem([*program[:4], "G0 G1 X10"], LASER) == ("gcode_two_moves", 5)
