"""The closed-form print estimate: behaviour of the model, and a check against PrusaSlicer."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from fabqueue.core.estimates import PrintEstimate, PrintParams, estimate_print

PLA_DENSITY = 1.24
CUBE = {"volume_mm3": 8000.0, "surface_mm2": 2400.0, "bbox_mm": (20.0, 20.0, 20.0)}


def cube(params: PrintParams = PrintParams(), copies: int = 1, **extra: float) -> PrintEstimate:
    return estimate_print(**CUBE, params=params, density_g_cm3=PLA_DENSITY, price_per_kg=25.0,
                          copies=copies, **extra)


def test_cube_estimate_is_plausible_and_consistent() -> None:
    estimate = cube()
    assert 2.5 < estimate.material_g < 5.0  # far less than solid (9.9 g), more than walls only
    # metres follow from grams: volume over the filament's cross-section
    volume_mm3 = estimate.material_g / PLA_DENSITY * 1000
    assert estimate.filament_m == pytest.approx(volume_mm3 / (math.pi * 0.875**2) / 1000,
                                                rel=0.01)
    assert estimate.cost == pytest.approx(estimate.material_g / 1000 * 25.0, abs=0.01)
    assert 10 * 60 < estimate.seconds < 30 * 60


def test_more_infill_more_material_and_time() -> None:
    sparse, dense = cube(PrintParams(fill_density=0.1)), cube(PrintParams(fill_density=0.5))
    assert dense.material_g > sparse.material_g * 1.3
    assert dense.seconds > sparse.seconds


def test_full_infill_approaches_the_solid_volume() -> None:
    solid = cube(PrintParams(fill_density=1.0, infill_overlap=1.0))
    assert solid.material_g == pytest.approx(8000 / 1000 * PLA_DENSITY, rel=0.01)


def test_material_never_exceeds_the_solid_part() -> None:
    thin = estimate_print(2000.0, 4240.0, (100.0, 20.0, 1.0), PrintParams(fill_density=1.0),
                          PLA_DENSITY, 25.0)
    assert thin.material_g <= 2000 / 1000 * PLA_DENSITY + 0.005  # grams are rounded to 0.01


def test_more_perimeters_more_material() -> None:
    assert cube(PrintParams(perimeters=4)).material_g > cube(PrintParams(perimeters=2)).material_g


def test_thinner_layers_take_longer() -> None:
    fine = cube(PrintParams(layer_height_mm=0.1, first_layer_height_mm=0.1))
    assert fine.seconds > cube().seconds * 1.5


def test_copies_multiply() -> None:
    one, four = cube(), cube(copies=4)
    assert four.material_g == pytest.approx(4 * one.material_g, rel=0.001)
    assert four.cost == pytest.approx(4 * one.cost, abs=0.02)


def test_nothing_to_print_costs_nothing() -> None:
    assert estimate_print(0.0, 0.0, (0.0, 0.0, 0.0), PrintParams(), 1.24, 25.0) == PrintEstimate(
        0.0, 0.0, 0.0, 0.0)
    assert cube(copies=0).material_g == 0


def test_side_area_matters_for_round_parts() -> None:
    r = 20.0
    sphere = {"volume_mm3": 4 / 3 * math.pi * r**3, "surface_mm2": 4 * math.pi * r**2,
              "bbox_mm": (2 * r, 2 * r, 2 * r), "params": PrintParams(),
              "density_g_cm3": PLA_DENSITY, "price_per_kg": 25.0,
              "footprint_mm2": math.pi * r**2}
    rough = estimate_print(**sphere)
    better = estimate_print(**sphere, wall_mm2=math.pi**2 * r**2)
    assert better.material_g > rough.material_g


def pillar(side: float, params: PrintParams = PrintParams()) -> PrintEstimate:
    height = 20.0
    return estimate_print(side * side * height, 2 * side * side + 4 * side * height,
                          (side, side, height), params, PLA_DENSITY, 25.0,
                          footprint_mm2=side * side, wall_mm2=4 * side * height)


def test_thin_pillar_is_filled_solid_like_prusaslicer_does() -> None:
    solid_g = 6 * 6 * 20 / 1000 * PLA_DENSITY
    assert pillar(6).material_g == pytest.approx(solid_g, rel=0.01)
    # without the small-region rule it would be sparse
    sparse = pillar(6, PrintParams(solid_infill_below_area_mm2=0))
    assert sparse.material_g < 0.95 * solid_g
    # a 14 mm pillar has room for sparse infill
    assert pillar(14).material_g < 0.5 * 14 * 14 * 20 / 1000 * PLA_DENSITY


def test_separate_bodies_have_smaller_insides() -> None:
    # two 9 mm pillars in one estimate: solid (as sliced) only when known to be two bodies
    args = (2 * 1620.0, 2 * (162 + 720), (30.0, 9.0, 20.0), PrintParams(), PLA_DENSITY, 25.0)
    together = estimate_print(*args, footprint_mm2=162.0, wall_mm2=1440.0)
    apart = estimate_print(*args, footprint_mm2=162.0, wall_mm2=1440.0, bodies=2)
    assert apart.material_g > together.material_g


def params_args(params: PrintParams) -> list[str]:
    return [
        "--layer-height", str(params.layer_height_mm),
        "--first-layer-height", str(params.first_layer_height_mm),
        "--nozzle-diameter", str(params.nozzle_diameter_mm),
        "--extrusion-width", str(params.extrusion_width_mm),
        "--perimeters", str(params.perimeters),
        "--top-solid-layers", str(params.top_solid_layers),
        "--bottom-solid-layers", str(params.bottom_solid_layers),
        "--fill-density", f"{params.fill_density * 100:.0f}%",
        "--filament-diameter", str(params.filament_diameter_mm),
        "--filament-density", str(PLA_DENSITY),
        "--perimeter-speed", str(params.perimeter_speed_mm_s),
        "--external-perimeter-speed", str(params.external_perimeter_speed_mm_s),
        "--infill-speed", str(params.infill_speed_mm_s),
        "--solid-infill-speed", str(params.solid_infill_speed_mm_s),
        "--top-solid-infill-speed", str(params.top_solid_infill_speed_mm_s),
        "--travel-speed", str(params.travel_speed_mm_s),
        "--first-layer-speed", str(params.first_layer_speed_mm_s),
        "--skirts", "0",
    ]


@pytest.mark.slicer
@pytest.mark.parametrize("params", [PrintParams(), replace(PrintParams(), fill_density=0.4,
                                                           perimeters=3)])
def test_within_fifteen_percent_of_prusaslicer(tmp_path: Path, params: PrintParams) -> None:
    if shutil.which("prusa-slicer") is None:
        pytest.skip("prusa-slicer is not installed")
    import trimesh

    stl, gcode = tmp_path / "cube.stl", tmp_path / "cube.gcode"
    trimesh.creation.box(extents=(20, 20, 20)).export(stl)
    subprocess.run(["prusa-slicer", "--export-gcode", *params_args(params), "-o", str(gcode),
                    str(stl)], check=True, capture_output=True, timeout=120)
    text = gcode.read_text(errors="replace")
    slicer_g = float(re.search(r"; filament used \[g\] = ([\d.]+)", text).group(1))
    ours = cube(params, footprint_mm2=400.0, wall_mm2=1600.0)
    assert ours.material_g == pytest.approx(slicer_g, rel=0.15)


@pytest.mark.slicer
@pytest.mark.parametrize("side", [6.0, 10.0])
def test_small_pillars_match_prusaslicer(tmp_path: Path, side: float) -> None:
    # 6 mm: PrusaSlicer fills the inside solid (under solid_infill_below_area); 10 mm: sparse
    if shutil.which("prusa-slicer") is None:
        pytest.skip("prusa-slicer is not installed")
    import trimesh

    stl, gcode = tmp_path / "pillar.stl", tmp_path / "pillar.gcode"
    trimesh.creation.box(extents=(side, side, 20)).export(stl)
    subprocess.run(["prusa-slicer", "--export-gcode", *params_args(PrintParams()), "-o",
                    str(gcode), str(stl)], check=True, capture_output=True, timeout=120)
    text = gcode.read_text(errors="replace")
    slicer_g = float(re.search(r"; filament used \[g\] = ([\d.]+)", text).group(1))
    assert pillar(side).material_g == pytest.approx(slicer_g, rel=0.15)
