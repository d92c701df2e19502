"""Slicing with the real PrusaSlicer CLI and the shipped profiles."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import trimesh

from fabqueue.analysis.machine_check import check_file, material_temperatures, printer_limits
from fabqueue.core.placement import placement
from fabqueue.core.specs import PrinterSpec
from fabqueue.slicing.profiles import default_profiles_folder, load_profiles
from fabqueue.slicing.prusaslicer import SliceError, slice_model
from tests.conftest import needs_prusaslicer

pytestmark = [
    pytest.mark.slicer,
    needs_prusaslicer,
]

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples"
PROFILES = load_profiles(default_profiles_folder())
MK4_PLA = PROFILES.profile_files("prusa_mk4", "PLA", "normal")
MK4_VOLUME = PROFILES.build_volume("prusa_mk4")
MK4_PLA_LIMITS = printer_limits(PrinterSpec("mk4", "site", MK4_VOLUME),
                                material_temperatures(PROFILES, "PLA"), sliced=True)


def box(tmp_path: Path, name: str, extents: tuple[float, float, float]) -> Path:
    path = tmp_path / name
    trimesh.creation.box(extents=extents).export(path)
    return path


def test_cube_slices_with_totals(tmp_path: Path) -> None:
    cube = box(tmp_path, "cube.stl", (20, 20, 20))
    result = slice_model(cube, tmp_path / "cube.gcode", MK4_PLA, build_volume=MK4_VOLUME)
    assert result.gcode.is_file()
    # A 20 mm cube, 2 perimeters, 15 % infill, PLA 1.24 g/cm³: about 4 g and 15-20 minutes.
    assert 3.0 < result.filament_g < 5.0  # type: ignore[operator]
    assert result.filament_cm3 == pytest.approx(result.filament_g / 1.24, rel=0.03)
    assert result.cost == pytest.approx(result.filament_g * 25 / 1000, abs=0.01)
    assert 8 * 60 < result.estimated_seconds < 30 * 60
    text = result.gcode.read_text()
    assert "M73 P" in text  # --remaining-times progress for the printer and simulator
    assert check_file(result.gcode, MK4_PLA_LIMITS) is None


def test_two_copies_use_twice_the_filament(tmp_path: Path) -> None:
    cube = box(tmp_path, "cube.stl", (20, 20, 20))
    one = slice_model(cube, tmp_path / "one.gcode", MK4_PLA)
    two = slice_model(cube, tmp_path / "two.gcode", MK4_PLA, copies=2)
    assert two.filament_mm == pytest.approx(2 * one.filament_mm, rel=0.05)
    assert check_file(two.gcode, MK4_PLA_LIMITS) is None
    # Arranged side by side, not stacked on one spot: the extrusions span two cubes and a gap.
    width, depth = extrusion_span(two.gcode)
    assert max(width, depth) > 2 * 20 + 3
    assert min(width, depth) < 20 + 10


def extrusion_span(gcode: Path) -> tuple[float, float]:
    """X and Y extent of the extruding moves after the purge line (layer 1 onwards)."""
    xs: list[float] = []
    ys: list[float] = []
    started = False
    for line in gcode.read_text().splitlines():
        started = started or line.startswith(";LAYER_CHANGE")
        if started and line.startswith("G1 ") and " E" in line:
            words = dict((w[0], w[1:]) for w in line.split(";")[0].split()[1:] if w)
            if "X" in words and "Y" in words:
                xs.append(float(words["X"]))
                ys.append(float(words["Y"]))
    return max(xs) - min(xs), max(ys) - min(ys)


def test_overrides_win_over_the_profiles(tmp_path: Path) -> None:
    cube = box(tmp_path, "cube.stl", (20, 20, 20))
    sparse = slice_model(cube, tmp_path / "a.gcode", MK4_PLA)
    dense = slice_model(cube, tmp_path / "b.gcode", MK4_PLA, overrides={"fill_density": "80%"})
    assert dense.filament_mm > sparse.filament_mm * 1.3
    with pytest.raises(SliceError) as raised:
        slice_model(cube, tmp_path / "c.gcode", MK4_PLA, overrides={"--post-process": "rm"})
    assert raised.value.code == "bad_override"


def test_too_wide_for_the_bed_is_refused_in_plain_words(tmp_path: Path) -> None:
    wide = box(tmp_path, "wide.stl", (340, 20, 10))  # longer than the bed's diagonal
    with pytest.raises(SliceError) as raised:
        slice_model(wide, tmp_path / "w.gcode", MK4_PLA)
    assert raised.value.code == "too_big"
    assert "does not fit on the printer's bed" in raised.value.reason
    assert not (tmp_path / "w.gcode").exists()


def test_copies_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    plate = box(tmp_path, "plate.stl", (150, 150, 5))
    with pytest.raises(SliceError) as raised:
        slice_model(plate, tmp_path / "p.gcode", MK4_PLA, copies=2)
    assert raised.value.code == "too_big"


def test_too_tall_is_refused_before_slicing(tmp_path: Path) -> None:
    tower = box(tmp_path, "tower.stl", (10, 10, 400))  # too long to lie on the bed either
    out = tmp_path / "tower.gcode"
    with pytest.raises(SliceError) as raised:
        slice_model(tower, out, MK4_PLA)  # height read from the printer's max_print_height
    assert raised.value.code == "too_tall"
    assert "400.0 mm tall" in raised.value.reason and "220 mm" in raised.value.reason
    assert raised.value.finding.code == "too_tall"
    assert raised.value.finding.params == {"height": 400.0, "limit": 220}
    assert not out.exists()  # PrusaSlicer itself would have sliced it


@pytest.mark.parametrize(("extents", "recipe"), [
    ((203, 305, 3), "y90+z"),   # a sign larger than the bed: only on its edge, turned
    ((300, 10, 20), "z"),       # a bar: only diagonally
    ((20, 20, 230), "x90"),     # a rod taller than the printer: lying down
])
def test_what_the_analysis_says_fits_is_what_the_slicer_slices(
        tmp_path: Path, extents: tuple[float, float, float], recipe: str) -> None:
    """The analysis' verdict and the slicer's turn come from one rule (core.placement):
    a part approved as fitting slices, instead of PrusaSlicer's "does not fit" after
    approval (issue 19: 203 × 305 mm on a 250 × 210 printer)."""
    part = box(tmp_path, "part.stl", extents)
    placed = placement(trimesh.load(part).vertices, MK4_VOLUME)
    assert placed is not None and placed.recipe.startswith(recipe), placed
    result = slice_model(part, tmp_path / "part.gcode", MK4_PLA, build_volume=MK4_VOLUME)
    assert result.filament_g and result.filament_g > 0
    assert check_file(result.gcode, MK4_PLA_LIMITS) is None


def test_unreadable_and_missing_models(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.stl"
    garbage.write_bytes(b"solid nonsense\nthis is not a mesh\n")
    for model in (garbage, tmp_path / "absent.stl"):
        with pytest.raises(SliceError) as raised:
            slice_model(model, tmp_path / "g.gcode", MK4_PLA)
        assert raised.value.code == "unreadable"


@pytest.fixture(scope="module")
def dense_sphere(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sphere") / "sphere.stl"
    trimesh.creation.icosphere(subdivisions=6, radius=40).export(path)  # 82k triangles
    return path


def test_timeout_stops_the_slicer(tmp_path: Path, dense_sphere: Path) -> None:
    fine = PROFILES.profile_files("prusa_mk4", "PLA", "fine")
    with pytest.raises(SliceError) as raised:
        slice_model(dense_sphere, tmp_path / "s.gcode", fine, timeout_s=0.3)
    assert raised.value.code == "timeout"
    assert "longer than 0.3 s" in raised.value.reason


def test_memory_limit_is_enforced(tmp_path: Path, dense_sphere: Path) -> None:
    with pytest.raises(SliceError) as raised:
        slice_model(dense_sphere, tmp_path / "s.gcode", MK4_PLA, memory_limit_mb=120)
    assert raised.value.code in ("out_of_memory", "no_outline")
    assert "120 MB" in raised.value.reason


def test_sample_cube_if_present(tmp_path: Path) -> None:
    sample = SAMPLES / "20mm-xyz-cube.stl"
    if not sample.is_file():
        pytest.skip(f"sample models not present at {SAMPLES}")
    ender = PROFILES.profile_files("ender3", "PETG", "draft")
    result = slice_model(sample, tmp_path / "x.gcode", ender)
    assert 3.0 < result.filament_g < 5.5  # type: ignore[operator]


def hostile_3mf(tmp_path: Path, marker: Path) -> Path:
    """A real 3MF whose embedded PrusaSlicer config runs a command and injects G-code."""
    plain = tmp_path / "plain.3mf"
    trimesh.creation.box(extents=(10, 10, 5)).export(plain)
    hostile = tmp_path / "hostile.3mf"
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(hostile, "w") as target:
        for member in source.infolist():
            target.writestr(member, source.read(member.filename))
        target.writestr("Metadata/Slic3r_PE.config", (
            "; generated by PrusaSlicer 2.5.0\n"
            f"; post_process = /usr/bin/touch {marker}\n"
            '; start_filament_gcode = "M502 ; FACTORY RESET"\n'
        ))
        target.writestr("Metadata/Prusa_Slicer_custom_gcode_per_print_z.xml", (
            '<?xml version="1.0" encoding="utf-8"?>\n<custom_gcodes_per_print_z>\n'
            '<code print_z="1" type="4" extruder="1" color="" extra="M117 INJECTED" '
            'gcode="M117 INJECTED"/>\n<mode value="SingleExtruder"/>\n'
            "</custom_gcodes_per_print_z>\n"
        ))
    return hostile


def test_3mf_cannot_run_commands_or_inject_gcode(tmp_path: Path) -> None:
    # Verified without the guards: PrusaSlicer 2.5 runs the 3MF's post_process and writes
    # its M502 and M117 into the G-code.
    marker = tmp_path / "PWNED"
    model = hostile_3mf(tmp_path, marker)
    result = slice_model(model, tmp_path / "out.gcode", MK4_PLA)
    assert not marker.exists()
    body = result.gcode.read_text()
    assert "M502" not in body and "INJECTED" not in body
    assert "; post_process = \n" in body or '; post_process = ""' in body
    assert result.filament_g and result.filament_g > 0
