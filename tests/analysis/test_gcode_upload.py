"""Staff G-code uploads: the tokenizer-based check decides which printers may run them."""

from __future__ import annotations

from pathlib import Path

import pytest

from fabqueue.analysis.gcode import analyse_gcode
from fabqueue.analysis.machine_check import FALLBACK_TEMPERATURES, material_temperatures
from fabqueue.core.specs import PrinterSpec
from fabqueue.slicing.profiles import default_profiles_folder, load_profiles

SMALL = PrinterSpec("small", "s", (180.0, 180.0, 180.0))
LARGE = PrinterSpec("large", "s", (300.0, 300.0, 300.0))
PLA = material_temperatures(load_profiles(default_profiles_folder()), "PLA")
HEAD = "G28\nG90\nM83\nM104 S210\nM140 S60\nG1 Z0.2 F600\n"


def analyse(tmp_path: Path, body: str, printers=(SMALL, LARGE)) -> dict:
    path = tmp_path / "staff.gcode"
    path.write_text(HEAD + body)
    return analyse_gcode(path, printers=printers, temperatures=PLA)


def test_pla_limits_come_from_the_filament_profile() -> None:
    assert PLA == (225.0, 70.0)  # PLA.ini: 215 °C first layer, 60 °C bed; plus 10 °C
    assert material_temperatures(load_profiles(default_profiles_folder()), "unknown")[0] \
        == 250.0  # the hottest profile (PETG 240 °C) plus the margin
    assert material_temperatures(None, "PLA") == FALLBACK_TEMPERATURES


def test_a_move_that_fits_only_the_large_printer(tmp_path: Path) -> None:
    report = analyse(tmp_path, "G1X250Y10E5\n")
    assert report["ok"] and report["fits"] == ["large"]
    assert "Line 7 moves X to 250" in report["outside"]["small"]


@pytest.mark.parametrize(("body", "code"), [
    ("G1X999Y999Z999\n", "gcode_outside"),
    ("G0\tX-500\n", "gcode_outside"),
    ("N10 G1 Z-50*17\n", "gcode_outside"),
    ("G53 G0 X0\n", "gcode_command_refused"),
    ("M92 E9999\n", "gcode_persistent_setting"),
    ("M500\n", "gcode_persistent_setting"),
    ("M502\n", "gcode_persistent_setting"),
    ("M211 S0\n", "gcode_command_refused"),
    ("M104 S290\n", "gcode_temperature"),
    ("G90 G91\n", "gcode_two_commands"),
    ("G92 Z\n", "gcode_letter_without_value"),
    ("M220 S150\n", "gcode_persistent_setting"),
    ("M204 P5000\n", "gcode_persistent_setting"),
    ("G29 S1\n", "gcode_mesh_saved"),
])
def test_the_issue_cases_make_the_job_invalid_with_the_line(tmp_path: Path, body: str,
                                                            code: str) -> None:
    report = analyse(tmp_path, body)
    assert not report["ok"] and report["fits"] == []
    error = report["errors"][0]
    assert error["code"] == code and error["params"]["line"] == 7
    assert error["text"].startswith("Line {line}")
