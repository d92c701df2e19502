"""Defence in depth: what PrusaSlicer writes from the real samples passes the G-code check."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fabqueue.analysis.machine_check import check_file, material_temperatures, printer_limits
from fabqueue.core.specs import PrinterSpec
from fabqueue.slicing.profiles import default_profiles_folder, load_profiles
from fabqueue.slicing.prusaslicer import slice_model
from tests.conftest import sample

pytestmark = [pytest.mark.slicer]
PROFILES = load_profiles(default_profiles_folder())
CASES = [  # (sample, printer profile, copies): every shipped profile and every mesh format
    ("20mm-xyz-cube.stl", "ender3", 1),
    ("teapot.stl", "generic_220", 1),
    ("rabbit.obj", "prusa_mk4", 3),
    ("pyramids.3mf", "prusa_mk4", 1),
    ("featuretype.3MF", "generic_220", 1),
    ("idler_riser.STL", "ender3", 2),
]


@pytest.fixture(scope="module", autouse=True)
def _prusaslicer() -> None:
    if shutil.which("prusa-slicer") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PrusaSlicer is missing in CI")
        pytest.skip("PrusaSlicer not installed")


@pytest.mark.parametrize(("name", "printer", "copies"), CASES)
def test_sliced_sample_passes_the_check(tmp_path: Path, name: str, printer: str,
                                        copies: int) -> None:
    material = PROFILES.materials(printer)[0]
    result = slice_model(sample(name), tmp_path / "out.gcode",
                         PROFILES.profile_files(printer, material, "draft"), copies=copies)
    volume = PROFILES.build_volume(printer)
    limits = printer_limits(PrinterSpec(printer, "site", volume),
                            material_temperatures(PROFILES, material), sliced=True)
    assert check_file(result.gcode, limits) is None
    # ... and the same check does catch a program that leaves this printer's bed.
    text = result.gcode.read_text()
    moved = tmp_path / "moved.gcode"
    moved.write_text(text.replace("G1 X", f"G1 X{volume[0]:.0f}", 1))
    found = check_file(moved, limits)
    assert found is not None and found.code == "gcode_outside"
