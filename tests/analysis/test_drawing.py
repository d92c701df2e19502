"""SVG analysis for the laser: the report contract, fits, cost, bad files, thumbnail, sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from fabqueue.analysis.drawing import analyse_for_job, analyse_svg, analyse_svg_toolpaths
from fabqueue.core.specs import LaserSpec, MaterialSpec
from fabqueue.laser.gcode import generate_gcode
from fabqueue.laser.materials import load_library
from fabqueue.laser.paths import ColourMap
from fabqueue.laser.planning import plan_toolpaths, travel_length

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO.parent / "shared" / "samples"
LIBRARY = load_library(REPO / "slicer_profiles" / "laser")
SMALL = LaserSpec(id="small", site="lab", bed_mm=(300.0, 200.0), materials=("plywood-3mm",))
LARGE = LaserSpec(id="large", site="lab", bed_mm=(600.0, 400.0),
                  materials=("plywood-3mm", "mdf-3mm"))
PLYWOOD = MaterialSpec(id="plywood-3mm", kind="sheet", price_per_sheet=6.0,
                       sheet_mm=(600.0, 400.0), laser_material="plywood-3mm")

PARTS = ('<rect x="10" y="10" width="100" height="50" stroke="#ff0000" fill="none"/>'
         '<circle cx="30" cy="35" r="5" stroke="#ff0000" fill="none"/>'
         '<path d="M50 20 H90" stroke="#0000ff" fill="none"/>'
         '<rect x="60" y="40" width="20" height="10" fill="#000000"/>')


def write_svg(tmp_path: Path, body: str, size: str = 'width="200mm" height="100mm" '
              'viewBox="0 0 200 100"', name: str = "job.svg") -> Path:
    path = tmp_path / name
    path.write_text(f'<svg xmlns="http://www.w3.org/2000/svg" {size}>{body}</svg>')
    return path


def analyse(path: Path, **kwargs) -> dict:
    options = {"material": PLYWOOD, "lasers": [SMALL, LARGE], "library": LIBRARY} | kwargs
    report = analyse_svg(path, **options)
    json.dumps(report)  # the contract: JSON-able
    return report


def codes(items: list[dict]) -> set[str]:
    return {item["code"] for item in items}


def test_report_contract_on_a_good_drawing(tmp_path: Path) -> None:
    report = analyse(write_svg(tmp_path, PARTS))
    assert report["ok"] is True and report["errors"] == []
    assert report["size_mm"] == [100.0, 50.0]
    ops = {(o["colour"], o["operation"]): o for o in report["operations"]}
    assert set(ops) == {("#ff0000", "cut"), ("#0000ff", "score"), ("#000000", "engrave")}
    assert ops[("#ff0000", "cut")]["length_mm"] == pytest.approx(300 + 31.4, abs=0.2)
    assert ops[("#0000ff", "score")]["length_mm"] == pytest.approx(40)
    assert ops[("#000000", "engrave")]["area_mm2"] == pytest.approx(200, rel=0.02)
    assert report["cut_length_mm"] == pytest.approx(331.4, abs=0.3)
    assert report["score_length_mm"] == pytest.approx(40)
    assert report["engrave_area_mm2"] == pytest.approx(200, rel=0.02)
    assert report["fits"] == ["small", "large"]
    # 50 × 100 mm of a 600 × 400 mm sheet at 6.00: pro rata by bounding-box area.
    assert report["cost"] == pytest.approx(6.0 * 5000 / 240000, abs=0.01)


def test_estimate_follows_the_material_speeds_and_passes(tmp_path: Path) -> None:
    path = write_svg(tmp_path, '<rect x="0" y="0" width="100" height="100" stroke="red" '
                               'fill="none"/>')
    plywood3 = analyse(path)["estimated_seconds"]
    plywood4 = analyse(path, material=MaterialSpec(id="plywood-4mm", kind="sheet"),
                       lasers=[LARGE])["estimated_seconds"]
    cut3, cut4 = LIBRARY["plywood-3mm"].operation("cut"), LIBRARY["plywood-4mm"].operation("cut")
    assert plywood3 == pytest.approx(400 / cut3.speed_mm_min * 60 * cut3.passes, rel=0.05)
    assert plywood4 == pytest.approx(400 / cut4.speed_mm_min * 60 * cut4.passes, rel=0.05)
    assert analyse(path, material=None)["estimated_seconds"] is None


def test_fits_respects_bed_size_and_material(tmp_path: Path) -> None:
    wide = write_svg(tmp_path, '<rect x="0" y="0" width="350" height="100" stroke="red" '
                               'fill="none"/>', 'width="400mm" height="100mm" '
                               'viewBox="0 0 400 100"')
    assert analyse(wide)["fits"] == ["large"]
    mdf = MaterialSpec(id="mdf-3mm", kind="sheet")
    assert analyse(write_svg(tmp_path, PARTS), material=mdf)["fits"] == ["large"]
    leather = MaterialSpec(id="leather", kind="sheet")
    report = analyse(write_svg(tmp_path, PARTS), material=leather)
    assert report["ok"] is False and "no_laser_for_material" in codes(report["errors"])


def test_unknown_material_is_a_clear_error(tmp_path: Path) -> None:
    report = analyse(write_svg(tmp_path, PARTS),
                     material=MaterialSpec(id="balsa-1mm", kind="sheet"), lasers=[])
    assert report["ok"] is False
    (error,) = report["errors"]
    assert error["code"] == "unknown_material" and error["params"]["material"] == "balsa-1mm"


def test_a_hundred_metre_drawing_fits_no_laser(tmp_path: Path) -> None:
    path = write_svg(tmp_path, '<rect x="0" y="0" width="100" height="10" stroke="red" '
                               'fill="none"/>', 'width="100000mm" height="10000mm" '
                               'viewBox="0 0 100 10"')
    report = analyse(path)
    assert report["size_mm"] == [100000.0, 10000.0]
    assert report["fits"] == [] and report["ok"] is False
    assert "too_big_for_lasers" in codes(report["errors"])
    assert "larger_than_sheet" in codes(report["warnings"])


def test_drawing_without_size_warns_and_still_analyses(tmp_path: Path) -> None:
    report = analyse(write_svg(tmp_path, PARTS, size=""))
    assert report["ok"] is True
    assert "svg_size_missing" in codes(report["warnings"])
    assert report["size_mm"] == pytest.approx([26.46, 13.23], abs=0.01)  # px at 96/in


def test_nothing_to_cut_is_not_ok(tmp_path: Path) -> None:
    report = analyse(write_svg(tmp_path, ""))
    assert report["ok"] is False and codes(report["errors"]) == {"nothing_to_cut"}


def test_other_colours_than_the_convention_wait_for_a_choice(tmp_path: Path) -> None:
    # issue 10 item 5: not unusable; people choose what each colour does
    report = analyse(write_svg(tmp_path, '<path d="M0 0 H10" stroke="#00ff00" fill="none"/>'))
    assert report["ok"] is True and report["needs_choice"] is True
    assert "choose_colours" in codes(report["warnings"])
    assert [c["key"] for c in report["colours"]] == ["stroke:#00ff00"]


def test_open_and_crossing_cuts_are_ok_with_warnings(tmp_path: Path) -> None:
    body = ('<path d="M10 10 L20 20 L10 20 L20 10 Z" stroke="red" fill="none"/>'
            '<path d="M40 40 L60 40 L60 60" stroke="red" fill="none"/>')
    report = analyse(write_svg(tmp_path, body))
    assert report["ok"] is True
    assert {"open_path", "self_intersecting"} <= codes(report["warnings"])


def test_text_and_images_warned_in_the_report(tmp_path: Path) -> None:
    report = analyse(write_svg(tmp_path, PARTS + "<text x='1' y='1'>Hi</text>"))
    assert "svg_text" in codes(report["warnings"]) and report["ok"] is True


@pytest.mark.parametrize(("content", "code"), [
    (b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">'
     b']><svg xmlns="http://www.w3.org/2000/svg"><text>&b;</text></svg>', "svg_entities"),
    (b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
     b'<svg xmlns="http://www.w3.org/2000/svg"><text>&x;</text></svg>', "svg_entities"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'><path d='M0 0", "svg_unreadable"),
    (b"", "empty_file"),
    (b"\x89PNG\r\n\x1a\nnot an svg at all", "svg_unreadable"),
])
def test_bad_files_give_findings_not_exceptions(tmp_path: Path, content: bytes,
                                                code: str) -> None:
    path = tmp_path / "bad.svg"
    path.write_bytes(content)
    report = analyse(path)
    assert report["ok"] is False and code in codes(report["errors"])


def test_million_segments_refused_quickly(tmp_path: Path) -> None:
    d = "M0 0" + " L1 1 L2 0" * 500_000
    path = write_svg(tmp_path, f'<path d="{d}" stroke="red" fill="none"/>')
    report = analyse(path)  # how fast: bench/bench_unit_timings.py
    assert codes(report["errors"]) == {"svg_too_complex"}


def test_byte_limit_is_checked_before_reading(tmp_path: Path) -> None:
    report = analyse(write_svg(tmp_path, PARTS), max_bytes=100)
    assert codes(report["errors"]) == {"file_too_large"}


def test_thumbnail_colours_the_operations(tmp_path: Path) -> None:
    out = tmp_path / "thumbs" / "job.png"
    report = analyse_for_job(write_svg(tmp_path, PARTS), thumbnail=out, material=PLYWOOD,
                             lasers=[LARGE], library=LIBRARY, printers=[])
    assert report["ok"] is True
    image = Image.open(out).convert("RGB")
    assert image.size == (256, 256)
    colours = {c for _, c in image.getcolors(256 * 256)}
    red = any(r > 150 and g < 80 and b < 80 for r, g, b in colours)
    blue = any(b > 150 and r < 80 and g < 80 for r, g, b in colours)
    black = (0, 0, 0) in colours
    assert red and blue and black


def test_no_thumbnail_for_a_refused_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.svg"
    path.write_bytes(b"not svg")
    out = tmp_path / "bad.png"
    assert analyse_for_job(path, thumbnail=out)["ok"] is False
    assert not out.exists()


def test_sample_tray_is_analysed_and_planned() -> None:
    sample = SAMPLES / "tray-easy1.svg"
    if not sample.exists():
        pytest.skip("shared samples are not present beside the repository")
    # The sample is drawn in black strokes: by default nothing is cut, the colour is named
    # and listed, and the job waits for people to choose what black does (issue 10 item 5).
    default = analyse(sample)
    assert default["needs_choice"] is True and "svg_unknown_colours" in codes(default["warnings"])
    assert [c["key"] for c in default["colours"]] == ["stroke:#000000"]
    assert "svg_units_assumed" in codes(default["warnings"])  # Inkscape unitless size
    # A site that cuts black strokes gets a full analysis, a plan and a program.
    site = ColourMap(cut_strokes=("#ff0000", "#000000"))
    report, toolpaths = analyse_svg_toolpaths(sample, material=PLYWOOD, lasers=[SMALL, LARGE],
                                              library=LIBRARY, colours=site)
    assert report["ok"] is True and report["fits"] == ["large"]
    assert report["cut_length_mm"] > 1000 and report["estimated_seconds"] > 0
    plan = plan_toolpaths(toolpaths.paths)
    assert plan.travel_mm < travel_length(toolpaths.paths)
    program = generate_gcode(plan, LIBRARY["plywood-3mm"], LARGE)
    assert program.lines[-1] == "M5" and program.total_seconds > 0


def test_sample_with_viewbox_and_unitless_size_is_read_as_px() -> None:
    sample = SAMPLES / "MIL.svg"
    if not sample.exists():
        pytest.skip("shared samples are not present beside the repository")
    site = ColourMap(cut_strokes=("#000000",))
    report = analyse(sample, colours=site, lasers=[LARGE])
    # width="2302.11" height="5329.134" without units: px at 96 per inch.
    assert report["page_mm"] == pytest.approx([609.1, 1410.0], abs=0.1)
    assert "svg_units_assumed" in codes(report["warnings"])
    assert report["cut_length_mm"] > 0
