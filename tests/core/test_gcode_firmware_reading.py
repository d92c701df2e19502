"""The check reads a line as Marlin and Klipper run it (issue 19): the first command word wins,
a bare letter is no value, arcs turn their P full circles, lines fit the firmware's buffer,
settings that outlive the print are refused, and FabQueue's own ending passes the check."""

from __future__ import annotations

import pytest

from fabqueue.core.gcode import MachineKind, MachineLimits, check_program
from fabqueue.core.gcode.check import follow_program
from fabqueue.core.gcode.rules import (
    MAX_COMMAND_CHARS,
    PERSISTENT_SETTINGS,
    SAFE_ENDING,
    safe_ending,
)

PRINTER = MachineLimits(MachineKind.PRINTER, (250.0, 210.0, 220.0), nozzle_max_c=225,
                        bed_max_c=70)
LASER = MachineLimits(MachineKind.LASER, (400.0, 300.0, 0.0), max_power_s=1000)


def problem(lines: list[str], limits: MachineLimits = PRINTER) -> tuple[str, int] | None:
    found = check_program(lines, limits)
    return None if found is None else (found.code, found.params["line"])


# The programs of the issue: each was accepted, and each drives the real machine elsewhere.
@pytest.mark.parametrize(("lines", "expected"), [
    # The printer runs G90 (absolute) and goes to Z -5; the old check read G91 and saw Z 5.
    (["G28", "G1 Z10", "G90 G91", "G1 Z-5"], ("gcode_two_commands", 3)),
    # The printer stays relative (G91) and moves +200 three times.
    (["G28", "G91 G90", "G1 X200", "G1 X200", "G1 X200"], ("gcode_two_commands", 2)),
    # The printer never homes: the position is unknown, not 0.
    (["G90 G28", "G91", "G1 X10"], ("gcode_two_commands", 1)),
    # Marlin ignores "Z" without a number: no offset is set, Z -5 is into the bed.
    (["G28", "G1 Z10", "G92 Z", "G1 Z-5"], ("gcode_letter_without_value", 3)),
    # Marlin ignores "X": the head stays at 200, then +240 reaches 440.
    (["G28", "G1 X200", "G1 X", "G91", "G1 X240"], ("gcode_letter_without_value", 3)),
])
def test_the_issue_programs_are_refused_at_the_misread_line(
        lines: list[str], expected: tuple[str, int]) -> None:
    assert problem(lines) == expected


def test_the_refusals_say_which_line_and_why() -> None:
    found = check_program(["G28", "G90 G91"], PRINTER)
    assert found is not None and found.render() == (
        "Line 2 has a second command (G91); the printer runs only a line's first command and "
        "reads the rest as its settings. Put each command on its own line.")
    found = check_program(["G28", "G92 Z"], PRINTER)
    assert found is not None and found.params["letter"] == "Z"
    assert found.render().startswith("Line 2: Z has no number")


@pytest.mark.parametrize("line", [
    "G28 G1 X10", "T0 M107", "M104 S200 M140 S60", "G1 X10 M84", "g1 x10 g91", "G1X5G1Y5",
    "X10 G1 Y10", "M107 G4 P100",
])
def test_a_second_command_word_is_refused_anywhere_on_the_line(line: str) -> None:
    assert problem(["G28", line]) == ("gcode_two_commands", 2)


@pytest.mark.parametrize("line", ["G1 X", "G1 X10 Y", "G0 Z F3000", "M104 S", "G92 E",
                                  "M106 S", "G2 X10 Y10 I", "G29 P"])
def test_a_letter_without_a_value_is_refused(line: str) -> None:
    assert problem(["G28", "G1 X20 Y20 Z5", line]) == ("gcode_letter_without_value", 3)


def test_bare_letters_that_are_flags_pass() -> None:
    assert problem(["G28 X Y", "G28 Z", "G1 X10 Y10 Z5", "M84 E", "M18 X Y", "M84"]) is None


def test_arcs_with_full_circles_are_checked_over_their_turns() -> None:
    base = ["G28", "G1 X30 Y100 Z1"]
    # A quarter arc around (50, 100) stays within X 30..50; one full turn first reaches X 70
    # (inside), around (20, 100) a turn reaches X -10 (outside) though the arc alone does not.
    assert problem([*base, "G2 X50 Y120 I20 J0"]) is None
    assert problem([*base, "G2 X50 Y120 I20 J0 P1"]) is None
    assert problem([*base, "G3 X20 Y90 I-10 J0"]) is None
    assert problem([*base, "G3 X20 Y90 I-10 J0 P2"]) is None
    assert problem(["G28", "G1 X5 Y100 Z1", "G3 X15 Y90 I10 J0"]) is None
    assert problem(["G28", "G1 X5 Y100 Z1", "G3 X15 Y90 I10 J0 P1"]) is None
    assert problem(["G28", "G1 X5 Y100 Z1", "G2 X25 Y100 I10 J0 P3"]) is None
    assert problem(["G28", "G1 X215 Y100 Z1", "G2 X235 Y100 I10 J0"]) is None
    assert problem(["G28", "G1 X215 Y100 Z1", "G3 X235 Y100 I10 J0"]) is None
    # Both half circles of the arc above stay inside (max X 235 + 10 = 245)... but not a
    # circle of radius 20 around (235, 100): a turn reaches X 255.
    assert problem(["G28", "G1 X215 Y100 Z1", "G2 X235 Y120 I20 J0"]) is None
    assert problem(["G28", "G1 X215 Y100 Z1", "G2 X235 Y120 I20 J0 P1"]) == (
        "gcode_outside", 3)
    assert problem(["G28", "G1 X215 Y100 Z1", "G2 X235 Y120 R20 P1"]) == ("gcode_outside", 3)
    assert problem([*base, "G2 X50 Y120 I20 J0 P1.5"]) == ("gcode_bad_arc", 3)
    assert problem([*base, "G2 X50 Y120 I20 J0 P-1"]) == ("gcode_bad_arc", 3)
    assert problem([*base, "G2 X50 Y120 I20 J0 P101"]) == ("gcode_bad_arc", 3)
    assert problem([*base, "G2 X50 Y120 I20 J0 P100"]) is None
    assert problem(["G21", "G90", "G0 X10 Y10", "G2 X10 Y10 I390 J0 P1"], LASER) == (
        "gcode_outside", 4)


def test_lines_longer_than_marlin_reads_are_refused() -> None:
    fits = "G1 X10 Y10" + " " * (MAX_COMMAND_CHARS - 13) + "Z20"
    assert len(fits) == MAX_COMMAND_CHARS == 95
    assert problem(["G28", fits]) is None
    # Marlin keeps 95 characters: the "Z-5" at 96..98 would be cut to "Z", or worse.
    too_long = "G1 X10 Y10" + " " * (MAX_COMMAND_CHARS - 10) + "Z-5"
    assert problem(["G28", too_long]) == ("gcode_line_too_long", 2)
    found = check_program(["G28", too_long], PRINTER)
    assert found is not None and found.params["count"] == len(too_long)
    # A long comment is not stored by the firmware: PrusaSlicer's settings block passes.
    assert problem(["G28", "G1 X10 Y10 ; " + "x" * 400, "; start_gcode = " + "M104 " * 50]) \
        is None
    assert problem(["G28", "G1X10Y10" + " " * 200 + "\r\n"]) is None
    # The fast path for plain moves is bounded too.
    assert problem(["G28", "G1 X10" + " Y10" * 30]) == ("gcode_line_too_long", 2)


@pytest.mark.parametrize("command", sorted(PERSISTENT_SETTINGS))
def test_settings_that_outlive_the_print_are_refused(command: str) -> None:
    line = f"{command} S100" if command not in ("M500", "M502") else command
    assert problem(["G28", line]) == ("gcode_persistent_setting", 2)


@pytest.mark.parametrize("line", ["M92 E9999", "M201 X1000", "M202 X1000", "M203 X500",
                                  "M204 P1000 R1000 T1000", "M205 X10", "M220 S1000",
                                  "M221 S150", "M851 Z-5", "M900 K0.5", "M500", "M502"])
def test_the_issue_settings_are_refused_by_name(line: str) -> None:
    assert problem(["G28", line]) == ("gcode_persistent_setting", 2)


def test_g29_that_saves_a_mesh_is_refused_and_probing_passes() -> None:
    assert problem(["G28", "G29"]) is None
    assert problem(["G28", "G29 P1"]) is None
    assert problem(["G28", "G29 S1"]) == ("gcode_mesh_saved", 2)
    assert problem(["G28", "G29 P1 S0"]) == ("gcode_mesh_saved", 2)
    assert problem(["G28", "G29 S"]) == ("gcode_letter_without_value", 2)


def test_the_safe_ending_passes_the_check_and_ends_heaters_fans_motors() -> None:
    assert SAFE_ENDING == ("M400", "M104 S0", "M140 S0", "M107", "M84")
    assert check_program(["G28", "G1 X10 Y10 Z5", *safe_ending()], PRINTER) is None
    two = MachineLimits(MachineKind.PRINTER, (250.0, 210.0, 220.0), nozzle_max_c=225,
                        bed_max_c=70, tools=2)
    assert safe_ending(2) == ("M400", "M104 S0", "M104 T1 S0", "M140 S0", "M107", "M84")
    assert check_program(["G28", *safe_ending(2)], two) is None


def test_follow_program_reports_the_position_it_reached() -> None:
    found, position = follow_program(["G28", "G1 X10 Y20 Z5", "G91", "G1 X5", "G90",
                                      "G92 X0", "G1 X10"], PRINTER)
    assert found is None and position == {"X": 25.0, "Y": 20.0, "Z": 5.0}
    found, position = follow_program(["G1 X10", "G1 X300"], PRINTER)
    assert found is not None and found.code == "gcode_outside"
    assert position == {"X": 10.0, "Y": None, "Z": None}


@pytest.mark.parametrize(("lines", "code"), [
    (["G28", "G90 G91"], "gcode_two_commands"),
    (["G28", "G92 Z"], "gcode_letter_without_value"),
    (["G28", "G1 X10" + " " * 100 + "Y5"], "gcode_line_too_long"),
    (["G28", "M220 S150"], "gcode_persistent_setting"),
    (["G28", "G29 S1"], "gcode_mesh_saved"),
    (["G28", "G1 X20 Y20", "G2 X30 Y30 I5 J5 P1.5"], "gcode_bad_arc"),
])
def test_each_refusal_reads_in_lithuanian_and_russian_with_its_line(
        lines: list[str], code: str) -> None:
    from fabqueue.core.reasons import reason, render
    from fabqueue.i18n import gettext

    found = check_program(lines, PRINTER)
    assert found is not None and found.code == code
    stored = reason(found.code, found.text, **found.params)
    english = render(stored)
    assert english.startswith(f"Line {len(lines)}")
    for locale in ("lt", "ru"):
        text = render(stored, lambda s, loc=locale: gettext(loc, s))
        assert text != english and str(len(lines)) in text, (locale, text)
        assert "{" not in text
