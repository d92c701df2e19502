"""The laser material library: the shipped files load, and bad files name file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from fabqueue.laser.materials import (
    LibraryError,
    Operation,
    UnknownMaterial,
    get_material,
    load_library,
)

SHIPPED = Path(__file__).resolve().parents[2] / "slicer_profiles" / "laser"

GOOD = """
id = "test-3mm"
name = "Test board"
thickness_mm = 3
sheet_mm = [600, 400]
price_per_sheet = 4.5

[cut]
speed_mm_min = 300
power_pct = 100
passes = 2
air_assist = true

[score]
speed_mm_min = 1500
power_pct = 40
passes = 1
air_assist = true

[engrave]
speed_mm_min = 3000
power_pct = 35
passes = 1
air_assist = false
line_interval_mm = 0.1
"""


def test_shipped_library_has_the_promised_materials() -> None:
    library = load_library(SHIPPED)
    assert {"plywood-3mm", "plywood-4mm", "mdf-3mm", "acrylic-3mm", "cardboard", "paper",
            "leather"} <= set(library)
    for material in library.values():
        assert set(material.operations) == set(Operation)
        assert material.thickness_mm > 0 and material.price_per_sheet > 0
        assert material.engrave_interval_mm > 0
        # Cutting goes through the sheet: slower or more passes than scoring.
        cut, score = material.operation("cut"), material.operation(Operation.SCORE)
        assert cut.speed_mm_min / cut.passes < score.speed_mm_min


def test_a_good_file_loads_into_typed_values(tmp_path: Path) -> None:
    (tmp_path / "test.toml").write_text(GOOD)
    material = load_library(tmp_path)["test-3mm"]
    assert material.sheet_mm == (600.0, 400.0)
    assert material.thickness_mm == 3.0 and isinstance(material.thickness_mm, float)
    assert material.operation("cut").passes == 2
    assert material.operation("cut").air_assist is True
    assert material.operation("engrave").line_interval_mm == 0.1


@pytest.mark.parametrize(("change", "message"), [
    (("power_pct = 100", "power_pct = 120"), "cut.power_pct"),
    (("passes = 2", "passes = 0"), "cut.passes"),
    (("speed_mm_min = 300", 'speed_mm_min = "fast"'), "cut.speed_mm_min"),
    (("line_interval_mm = 0.1", ""), "engrave.line_interval_mm: missing"),
    (("sheet_mm = [600, 400]", "sheet_mm = [600]"), "sheet_mm"),
    (("air_assist = true", "air_assist = 1"), "cut.air_assist"),
    (('id = "test-3mm"', ""), "id: missing"),
    (("[score]", "[scores]"), "score: missing"),
])
def test_bad_values_name_the_file_and_key(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    (tmp_path / "broken.toml").write_text(GOOD.replace(*change, 1))
    with pytest.raises(LibraryError) as caught:
        load_library(tmp_path)
    assert str(caught.value).startswith("broken.toml: ")
    assert message in str(caught.value)


def test_invalid_toml_and_duplicate_ids_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text("id = [unclosed")
    with pytest.raises(LibraryError, match=r"a\.toml: not valid TOML"):
        load_library(tmp_path)
    (tmp_path / "a.toml").write_text(GOOD)
    (tmp_path / "b.toml").write_text(GOOD)
    with pytest.raises(LibraryError, match=r"b\.toml: .*defined twice"):
        load_library(tmp_path)


def test_unknown_material_names_the_id() -> None:
    with pytest.raises(UnknownMaterial) as caught:
        get_material(load_library(SHIPPED), "balsa-1mm")
    assert caught.value.material_id == "balsa-1mm"
    assert "balsa-1mm" in str(caught.value)
