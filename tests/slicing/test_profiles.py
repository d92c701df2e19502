"""The shipped PrusaSlicer profiles load, and a broken or missing profile names its file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fabqueue.core.estimates import PrintParams
from fabqueue.slicing.profiles import ProfileError, default_profiles_folder, load_profiles

SHIPPED = default_profiles_folder()


@pytest.fixture()
def copy_of_profiles(tmp_path: Path) -> Path:
    folder = tmp_path / "printers"
    shutil.copytree(SHIPPED, folder)
    return folder


def test_shipped_profiles_offer_the_printers_materials_and_qualities() -> None:
    profiles = load_profiles(SHIPPED)
    assert {"prusa_mk4", "ender3", "generic_220"} <= set(profiles.printer_profiles())
    assert profiles.materials("prusa_mk4") == ["PLA", "PETG", "TPU"]
    assert "TPU" not in profiles.materials("ender3")  # Bowden: no flexible filament
    for printer in ("prusa_mk4", "ender3", "generic_220"):
        assert profiles.qualities(printer) == ["draft", "normal", "fine"]
    assert profiles.build_volume("prusa_mk4") == (250.0, 210.0, 220.0)
    assert profiles.build_volume("ender3") == (220.0, 220.0, 250.0)
    assert profiles.build_volume("generic_220")[:2] == (220.0, 220.0)


def test_profile_files_are_printer_then_filament_then_quality() -> None:
    profiles = load_profiles(SHIPPED)
    files = profiles.profile_files("ender3", "PETG", "fine")
    assert [p.relative_to(SHIPPED).as_posix() for p in files] == [
        "ender3.ini", "filaments/PETG.ini", "qualities/fine.ini",
    ]
    with pytest.raises(ProfileError, match="does not take material 'TPU'"):
        profiles.profile_files("ender3", "TPU", "fine")


def test_print_params_come_from_the_ini_files() -> None:
    profiles = load_profiles(SHIPPED)
    fine = profiles.print_params("prusa_mk4", "PLA", "fine")
    assert isinstance(fine, PrintParams)
    assert fine.layer_height_mm == 0.15
    assert fine.perimeters == 3
    assert fine.fill_density == pytest.approx(0.20)
    assert fine.perimeter_speed_mm_s == 45 and fine.travel_speed_mm_s == 180
    assert fine.extrusion_width_mm == 0.45 and fine.filament_diameter_mm == 1.75
    draft = profiles.print_params("ender3", "PLA", "draft")
    assert draft.layer_height_mm == 0.3 and draft.infill_speed_mm_s == 60
    # TPU's 1.5 mm³/s limit slows every extrusion move, as PrusaSlicer does.
    tpu = profiles.print_params("prusa_mk4", "TPU", "normal")
    assert tpu.infill_speed_mm_s == pytest.approx(1.5 / (0.45 * 0.2))
    assert profiles.material_props("PETG") == (1.27, 28.0)


def test_missing_setting_names_the_file(copy_of_profiles: Path) -> None:
    printer = copy_of_profiles / "ender3.ini"
    printer.write_text(
        "\n".join(line for line in printer.read_text().splitlines()
                  if not line.startswith("max_print_height"))
    )
    with pytest.raises(ProfileError) as raised:
        load_profiles(copy_of_profiles)
    assert raised.value.path == printer
    assert "max_print_height" in str(raised.value) and "ender3.ini" in str(raised.value)


def test_broken_value_and_bundle_name_the_file(copy_of_profiles: Path) -> None:
    filament = copy_of_profiles / "filaments" / "PLA.ini"
    filament.write_text(filament.read_text().replace("filament_density = 1.24",
                                                     "filament_density = heavy"))
    with pytest.raises(ProfileError, match=r"PLA\.ini: setting 'filament_density'"):
        load_profiles(copy_of_profiles)
    filament.write_text("[filament:PLA]\nfilament_diameter = 1.75\n")
    with pytest.raises(ProfileError, match="config bundle"):
        load_profiles(copy_of_profiles)


def test_relative_e_without_layer_reset_is_refused(copy_of_profiles: Path) -> None:
    printer = copy_of_profiles / "generic_220.ini"
    printer.write_text(printer.read_text().replace("layer_gcode = G92 E0", "layer_gcode = "))
    with pytest.raises(ProfileError, match=r"generic_220\.ini: use_relative_e_distances"):
        load_profiles(copy_of_profiles)


def test_missing_material_or_folder_is_named(copy_of_profiles: Path) -> None:
    (copy_of_profiles / "filaments" / "TPU.ini").unlink()
    with pytest.raises(ProfileError) as raised:
        load_profiles(copy_of_profiles)
    assert raised.value.path.name == "prusa_mk4.ini"
    assert "filaments/TPU.ini" in str(raised.value)
    with pytest.raises(ProfileError, match="profile folder not found"):
        load_profiles(copy_of_profiles / "nowhere")
    profiles = load_profiles(SHIPPED)
    with pytest.raises(ProfileError, match="no printer profile 'mk9'"):
        profiles.build_volume("mk9")
