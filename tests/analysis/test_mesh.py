"""analyse_mesh on the real sample models (trimesh's test models) and generated primitives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from fabqueue.analysis.mesh import analyse_mesh, analyse_mesh_geometry
from fabqueue.core.estimates import PrintParams
from fabqueue.core.specs import MaterialSpec, PrinterSpec

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "samples"
PLA = MaterialSpec("PLA", "filament", density_g_cm3=1.24, price_per_kg=25.0)
MK3 = PrinterSpec("mk3", "lab", (250, 210, 220), ("PLA", "PETG"))
MINI = PrinterSpec("mini", "lab", (180, 180, 180), ("PLA",))
BIG_TPU = PrinterSpec("big", "lab", (400, 400, 400), ("TPU",))
PRINTERS = (MK3, MINI, BIG_TPU)


def sample(name: str) -> Path:
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(f"sample models not present at {SAMPLES} (shared/ beside the repo)")
    return path


def analyse(path: Path, **kwargs: object) -> dict:
    options: dict = {"material": PLA, "params": PrintParams(), "printers": PRINTERS}
    options.update(kwargs)
    return analyse_mesh(path, path.suffix, **options)


def codes(findings: list[dict]) -> set[str]:
    return {f["code"] for f in findings}


def write_stl(mesh: trimesh.Trimesh, path: Path) -> Path:
    path.write_bytes(mesh.export(file_type="stl"))
    return path


def test_xyz_cube_is_one_watertight_body_of_known_volume() -> None:
    report = analyse(sample("20mm-xyz-cube.stl"))
    assert report["ok"] and report["errors"] == [] and report["warnings"] == []
    assert report["volume_cm3"] == pytest.approx(7.94, rel=0.01)
    assert report["bodies"] == 1 and report["watertight"] and report["winding_consistent"]
    assert report["bbox_mm"] == pytest.approx([20, 20, 20], abs=0.01)
    assert report["triangles"] == 260
    # PLA printers only: the TPU printer is not a candidate even though the cube fits it
    assert report["fits"] == ["mk3", "mini"]
    assert report["orientation"]["mk3"] == "as_is"
    assert 2 < report["material_g"] < 6 and report["filament_m"] > 0.5
    assert report["cost"] == pytest.approx(report["material_g"] / 1000 * 25, abs=0.011)
    assert report["estimated_seconds"] > 600


def test_report_is_json_serialisable() -> None:
    import json

    json.dumps(analyse(sample("teapot.stl")))


def test_ascii_multibody_reports_several_bodies() -> None:
    report = analyse(sample("multibody.stl"))
    assert report["ok"]
    assert report["bodies"] >= 2
    assert "multiple_bodies" in codes(report["warnings"])


def test_teapot_is_open_with_four_bodies() -> None:
    report = analyse(sample("teapot.stl"))
    assert report["ok"]
    assert not report["watertight"] and report["open_edges"] > 0
    assert report["bodies"] == 4
    assert {"not_watertight", "multiple_bodies"} <= codes(report["warnings"])
    warning = next(w for w in report["warnings"] if w["code"] == "multiple_bodies")
    assert warning["params"]["count"] == 4


@pytest.mark.parametrize("name", ["featuretype.STL", "idler_riser.STL"])
def test_part_drawn_in_inches_gets_a_scale_suggestion(name: str) -> None:
    report = analyse(sample(name))
    assert report["ok"]
    assert report["units_guess"] == "inch" and report["suggested_scale"] == 25.4
    assert "units_suspect" in codes(report["warnings"])
    # merged with a float32-sized grid these CAD exports are closed, as admesh finds
    assert report["watertight"] and report["bodies"] == 1


def test_idler_riser_volume_matches_admesh() -> None:
    report = analyse(sample("idler_riser.STL"))
    assert report["volume_cm3"] * 1000 == pytest.approx(1.4878, rel=0.001)


def test_tray_bottom_is_too_big_for_a_250_210_220_printer() -> None:
    report = analyse(sample("1002_tray_bottom.STL"), printers=(MK3,))
    assert report["ok"]  # printable in principle, just not here
    assert report["bbox_mm"][0] == pytest.approx(355.6, abs=0.01)
    assert report["fits"] == []
    assert "fits_no_printer" in codes(report["warnings"])


def test_3mf_in_inches_is_scaled_to_millimetres() -> None:
    report = analyse(sample("featuretype.3MF"))
    assert report["ok"] and report["format"] == "3mf"
    assert report["bbox_mm"] == pytest.approx([127.0, 63.5, 34.925], abs=0.01)
    assert report["volume_cm3"] == pytest.approx(11.63 * 2.54**3, rel=0.01)
    assert report["units_guess"] == "mm"


def test_3mf_with_many_objects() -> None:
    report = analyse(sample("pyramids.3mf"))
    assert report["ok"] and report["bodies"] == 12 and report["watertight"]
    assert report["volume_cm3"] == pytest.approx(195.04, rel=0.001)


def test_obj_sample() -> None:
    report = analyse(sample("rabbit.obj"))
    assert report["ok"] and report["format"] == "obj"
    assert report["triangles"] == 1252 and report["bodies"] > 1


def test_inverted_normals_are_measured_positive_and_warned(tmp_path: Path) -> None:
    box = trimesh.creation.box(extents=(20, 30, 40))
    box.invert()
    report = analyse(write_stl(box, tmp_path / "inside_out.stl"))
    assert report["ok"] and report["inverted_normals"]
    assert report["volume_cm3"] == pytest.approx(24.0, rel=1e-6)
    assert "inverted_normals" in codes(report["warnings"])


def test_flipped_faces_break_winding_consistency(tmp_path: Path) -> None:
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=10)
    faces = sphere.faces.copy()
    faces[:5] = faces[:5, ::-1]
    broken = trimesh.Trimesh(sphere.vertices, faces, process=False)
    report = analyse(write_stl(broken, tmp_path / "flipped.stl"))
    assert report["ok"] and report["watertight"] and not report["winding_consistent"]
    assert "inconsistent_winding" in codes(report["warnings"])


def test_tall_part_fits_lying_down(tmp_path: Path) -> None:
    rod = trimesh.creation.box(extents=(20, 20, 240))
    report = analyse(write_stl(rod, tmp_path / "rod.stl"), printers=(MK3,))
    assert report["fits"] == ["mk3"]
    assert report["orientation"]["mk3"].startswith(("x90", "y90"))


def test_long_thin_part_fits_diagonally(tmp_path: Path) -> None:
    bar = trimesh.creation.box(extents=(300, 10, 200))  # only fits standing, turned ~40°
    report = analyse(write_stl(bar, tmp_path / "bar.stl"), printers=(MK3,))
    assert report["fits"] == ["mk3"]
    orientation = report["orientation"]["mk3"]
    assert orientation.startswith("z") and 0 < int(orientation[1:]) < 90


def test_copies_scale_material_and_time(tmp_path: Path) -> None:
    path = write_stl(trimesh.creation.box(extents=(20, 20, 20)), tmp_path / "box.stl")
    one, three = analyse(path), analyse(path, copies=3)
    assert three["material_g"] == pytest.approx(3 * one["material_g"], rel=0.01)
    assert three["estimated_seconds"] == pytest.approx(3 * one["estimated_seconds"], rel=0.01)


def test_no_material_still_estimates_without_cost(tmp_path: Path) -> None:
    path = write_stl(trimesh.creation.box(extents=(20, 20, 20)), tmp_path / "box.stl")
    report = analyse(path, material=None)
    assert report["material_g"] > 0 and report["cost"] is None
    assert report["fits"] == ["mk3", "mini", "big"]


def test_geometry_is_returned_for_the_thumbnail() -> None:
    report, geometry = analyse_mesh_geometry(
        sample("20mm-xyz-cube.stl"), "stl", material=None, params=PrintParams(), printers=()
    )
    assert report["ok"] and geometry is not None
    assert geometry.faces.dtype == np.int32 and geometry.vertices.dtype == np.float32
    assert geometry.faces.max() < len(geometry.vertices)


def test_thumbnail_written_when_asked(tmp_path: Path) -> None:
    from PIL import Image

    out = tmp_path / "thumb.png"
    analyse(sample("teapot.stl"), thumbnail=out)
    with Image.open(out) as image:
        assert image.size == (256, 256)


def test_one_inside_out_part_of_two(tmp_path: Path) -> None:
    good = trimesh.creation.box(extents=(10, 10, 10))
    bad = trimesh.creation.box(extents=(10, 10, 10))
    bad.apply_translation((30, 0, 0))
    bad.invert()
    report = analyse(write_stl(trimesh.util.concatenate([good, bad]), tmp_path / "two.stl"))
    assert report["ok"] and report["bodies"] == 2 and report["inverted_normals"]
    assert report["volume_cm3"] == pytest.approx(2.0, rel=1e-6)
    warning = next(w for w in report["warnings"] if w["code"] == "inverted_normals")
    assert warning["params"]["count"] == 1


def test_hollow_inside_a_part_subtracts(tmp_path: Path) -> None:
    outer = trimesh.creation.box(extents=(20, 20, 20))
    void = trimesh.creation.box(extents=(10, 10, 10))
    void.invert()  # an inner shell facing inwards: a deliberate cavity
    report = analyse(write_stl(trimesh.util.concatenate([outer, void]), tmp_path / "hollow.stl"))
    assert report["ok"] and not report["inverted_normals"]
    assert report["volume_cm3"] == pytest.approx(8.0 - 1.0, rel=1e-6)


def test_quarter_million_triangles_stay_fast(tmp_path: Path) -> None:
    sphere = trimesh.creation.icosphere(subdivisions=6, radius=10)  # 81,920 faces
    parts = []
    for i in range(3):
        part = sphere.copy()
        part.apply_translation((25.0 * i, 0, 0))
        parts.append(part)
    path = write_stl(trimesh.util.concatenate(parts), tmp_path / "three.stl")
    report = analyse(path)
    assert report["ok"] and report["triangles"] == 3 * 81_920
    assert report["bodies"] == 3 and report["watertight"] and report["winding_consistent"]
    assert report["volume_cm3"] == pytest.approx(3 * sphere.volume / 1000, rel=1e-5)
    # ~0.15 s on an idle machine: timed in bench/bench_unit_timings.py, not here
