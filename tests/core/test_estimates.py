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
    thin = estimate_print(2000.0, 4240.0, (100.0, 20.0, 1.0),
                          PrintParams(fill_density=1.0, skirts=0), PLA_DENSITY, 25.0)
    assert thin.material_g <= 2000 / 1000 * PLA_DENSITY + 0.005  # grams are rounded to 0.01


def test_more_perimeters_more_material() -> None:
    assert cube(PrintParams(perimeters=4)).material_g > cube(PrintParams(perimeters=2)).material_g


def test_thinner_layers_take_longer() -> None:
    fine = cube(PrintParams(layer_height_mm=0.1, first_layer_height_mm=0.1))
    assert fine.seconds > cube().seconds * 1.5


def test_copies_multiply_and_share_one_skirt() -> None:
    no_skirt = PrintParams(skirts=0)
    one, four = cube(no_skirt), cube(no_skirt, copies=4)
    assert four.filament_m == pytest.approx(4 * one.filament_m, rel=0.001)  # grams: 0.01
    assert four.cost == pytest.approx(4 * one.cost, abs=0.02)
    # three skirt loops round the print, each about 4 × 20 mm + 2π × 6 mm = 118 mm long,
    # 0.38 mm spaced, 0.2 mm high: 0.034 g once, not once per copy (grams are rounded)
    skirted = PrintParams(skirts=3)
    skirted_one, skirted_four = cube(skirted), cube(skirted, copies=4)
    assert skirted_one.material_g - one.material_g == pytest.approx(0.034, abs=0.011)
    assert skirted_four.material_g - four.material_g == pytest.approx(0.034, abs=0.011)


def test_a_small_foot_gets_a_short_skirt() -> None:
    wide = cube(PrintParams(skirt_distance_mm=2.0))
    footed = cube(PrintParams(skirt_distance_mm=2.0), base_mm=(2.0, 5.0))
    assert footed.filament_m < wide.filament_m  # the grams round alike
    # three loops of at least 500 mm each, where one would be 93 mm
    long = cube(PrintParams(skirt_distance_mm=2.0, min_skirt_length_mm=1500.0))
    assert long.material_g - wide.material_g == pytest.approx(
        1500 / 1000 * 0.42 * 0.2 * PLA_DENSITY, rel=0.25)


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
        "--skirts", str(params.skirts),
        "--skirt-distance", str(params.skirt_distance_mm),
        "--skirt-height", str(params.skirt_height_layers),
        "--min-skirt-length", str(params.min_skirt_length_mm),
        "--first-layer-extrusion-width", str(params.first_layer_extrusion_width_mm),
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


# --- skins under every level surface, less what the perimeters cover on slopes ---

def prism(profile_xz: list[tuple[float, float]], triangles: list[tuple[int, int, int]],
          depth: float) -> object:
    """A closed prism: a triangulated profile in the x-z plane, ``depth`` mm deep along y."""
    import numpy as np
    import trimesh

    mesh = trimesh.creation.extrude_triangulation(np.array(profile_xz, dtype=float),
                                                  np.array(triangles), depth)
    mesh.apply_transform(trimesh.transformations.rotation_matrix(math.pi / 2, (1, 0, 0)))
    mesh.apply_translation(-mesh.bounds[0])
    return mesh


#: An L: a 40 × 4 mm base with a 10 × 26 mm tower on one end. The base's top is a ledge
#: (300 mm² of top skins) that the average cross-section (volume ÷ height) knows nothing of.
LEDGE = ([(0, 0), (40, 0), (40, 4), (10, 4), (10, 30), (0, 30), (0, 4)],
         [(0, 1, 2), (0, 2, 3), (0, 3, 6), (6, 3, 4), (6, 4, 5)])


def house(roof_degrees: float) -> tuple[list[tuple[float, float]], list[tuple[int, int, int]]]:
    """20 × 10 mm walls under two roofs at ``roof_degrees``."""
    ridge = 10 + 10 * math.tan(math.radians(roof_degrees))
    return [(0, 0), (20, 0), (20, 10), (10, ridge), (0, 10)], [(0, 1, 2), (0, 2, 3), (0, 3, 4)]


def test_a_ledge_gets_top_skins_like_a_flat_top() -> None:
    flat_up, flat_down = (1.0, 40 * 20.0), (-1.0, 40 * 20.0)
    ledge = estimate_print(40 * 4 * 20 + 10 * 26 * 20, 5000.0, (40.0, 20.0, 30.0), PrintParams(),
                           PLA_DENSITY, 25.0, footprint_mm2=800.0, wall_mm2=2 * 30 * 20 + 2160.0,
                           slopes=[flat_up, flat_down])
    without = estimate_print(40 * 4 * 20 + 10 * 26 * 20, 5000.0, (40.0, 20.0, 30.0),
                             PrintParams(), PLA_DENSITY, 25.0, footprint_mm2=800.0,
                             wall_mm2=2 * 30 * 20 + 2160.0, slopes=[(1.0, 200.0), flat_down])
    skin_g = 600 * PrintParams().top_solid_layers * 0.2 / 1000 * PLA_DENSITY
    # the ledge's 600 mm² add their five top layers (inside the perimeters' ring, 11% of
    # the footprint here) less the sparse infill and its anchors they replace (27%)
    assert ledge.material_g - without.material_g == pytest.approx(skin_g * 0.89 * 0.73,
                                                                   rel=0.1)


def test_steep_roofs_get_their_skin_from_the_perimeters() -> None:
    def roof(nz: float) -> float:  # 1000 mm² seen from above, at the slope of ``nz``
        return estimate_print(20000.0, 5000.0, (20.0, 50.0, 20.0), PrintParams(), PLA_DENSITY,
                              25.0, footprint_mm2=1000.0, wall_mm2=2800.0,
                              slopes=[(nz, 1000.0 / nz)]).material_g

    # five 0.2 mm layers make a 1 mm skin: under a 45° roof a 1 mm band per layer, wider than
    # the 0.81 mm perimeter ring, so it is all solid; under a 60° roof a 0.58 mm band, which
    # the perimeters cover: no skin (of the 1.24 g skin, what is inside the perimeters' ring
    # less the sparse infill it replaces)
    assert roof(math.sqrt(0.5)) == pytest.approx(roof(1.0), abs=0.011)
    assert roof(0.5) < roof(1.0) - 0.6 * 1000 * 1.0 / 1000 * PLA_DENSITY
    assert roof(0.5) == pytest.approx(roof(0.2), abs=0.011)


def analysed(path: Path, params: PrintParams) -> dict:
    from fabqueue.analysis.mesh import analyse_mesh
    from fabqueue.core.specs import MaterialSpec

    pla = MaterialSpec("PLA", "filament", density_g_cm3=PLA_DENSITY, price_per_kg=25.0)
    return analyse_mesh(path, ".stl", material=pla, params=params, printers=[])


def test_a_cube_with_faces_turned_over_is_measured_whole(tmp_path: Path) -> None:
    import numpy as np
    import trimesh

    clean = trimesh.creation.box(extents=(20, 20, 20))
    broken = clean.copy()
    faces = broken.faces.copy()
    faces[[0, 5, 7]] = faces[[0, 5, 7]][:, ::-1]  # three faces wound the wrong way
    broken.faces = faces
    assert not broken.is_winding_consistent
    (tmp_path / "clean.stl").write_bytes(clean.export(file_type="stl"))
    (tmp_path / "broken.stl").write_bytes(broken.export(file_type="stl"))
    good = analysed(tmp_path / "clean.stl", PrintParams())
    bad = analysed(tmp_path / "broken.stl", PrintParams())
    assert not bad["winding_consistent"]
    # summed as they are, the turned faces would cancel good ones (multibody.stl: 230 mm³
    # for 122); rewound, the volume and the estimate are the clean cube's
    assert bad["volume_cm3"] == pytest.approx(8.0, rel=1e-4)
    assert bad["material_g"] == good["material_g"]
    assert np.isclose(good["volume_cm3"], 8.0)


def slice_grams(stl: Path, params: PrintParams, tmp_path: Path) -> float:
    gcode = tmp_path / (stl.stem + ".gcode")
    subprocess.run(["prusa-slicer", "--export-gcode", *params_args(params), "-o", str(gcode),
                    str(stl)], check=True, capture_output=True, timeout=120)
    text = gcode.read_text(errors="replace")
    return float(re.search(r"; filament used \[g\] = ([\d.]+)", text).group(1))


@pytest.mark.slicer
@pytest.mark.parametrize("shape", ["ledge", "roof30", "roof45", "roof70"])
@pytest.mark.parametrize("params", [PrintParams(), replace(
    PrintParams(), layer_height_mm=0.15, perimeters=3, top_solid_layers=7,
    bottom_solid_layers=5, fill_density=0.2)], ids=["normal", "fine"])
def test_ledges_and_roofs_within_ten_percent_of_prusaslicer(
    tmp_path: Path, shape: str, params: PrintParams
) -> None:
    if shutil.which("prusa-slicer") is None:
        pytest.skip("prusa-slicer is not installed")
    profile, triangles = LEDGE if shape == "ledge" else house(float(shape[4:]))
    stl = tmp_path / f"{shape}.stl"
    stl.write_bytes(prism(profile, triangles, 20.0).export(file_type="stl"))
    ours = analysed(stl, params)
    assert ours["ok"] and ours["watertight"]
    # with skins capped at the average cross-section (the model before) the ledge was −22 %;
    # with the perimeters taken to cover part of every skin band the 45° roof was −12 %
    assert ours["material_g"] == pytest.approx(slice_grams(stl, params, tmp_path), rel=0.10)


@pytest.mark.slicer
def test_profile_shell_minimums_reach_the_estimate_as_they_reach_the_slicer(
    tmp_path: Path,
) -> None:
    if shutil.which("prusa-slicer") is None:
        pytest.skip("prusa-slicer is not installed")
    import trimesh

    from fabqueue.slicing.profiles import (
        IniFile,
        default_profiles_folder,
        load_profiles,
        print_params_from,
    )

    merged = load_profiles(default_profiles_folder()).merged("prusa_mk4", "PLA", "normal")
    thick = {**merged.settings, "top_solid_min_thickness": "2", "bottom_solid_min_thickness":
             "1.5", "solid_infill_below_area": "0"}
    params = print_params_from(IniFile(merged.path, thick, {}))
    # 2 mm of 0.2 mm layers is 10 layers, more than the 5 asked; 1.5 mm rounds up to 8
    assert (params.top_solid_layers, params.bottom_solid_layers) == (10, 8)
    assert params.solid_infill_below_area_mm2 == 0
    ini = tmp_path / "thick.ini"
    ini.write_text("".join(f"{key} = {value}\n" for key, value in thick.items()))
    stl, gcode = tmp_path / "cube.stl", tmp_path / "cube.gcode"
    stl.write_bytes(trimesh.creation.box(extents=(20, 20, 20)).export(file_type="stl"))
    subprocess.run(["prusa-slicer", "--export-gcode", "--load", str(ini), "-o", str(gcode),
                    str(stl)], check=True, capture_output=True, timeout=120)
    slicer_g = float(re.search(r"; filament used \[g\] = ([\d.]+)",
                               gcode.read_text(errors="replace")).group(1))
    ours = analysed(stl, params)["material_g"]
    thin = analysed(stl, print_params_from(merged))["material_g"]
    assert ours == pytest.approx(slicer_g, rel=0.10)
    assert ours > thin + 0.5  # 9 more solid layers of 18 × 18 mm


# --- time: acceleration on short moves, cooling of small layers (issue 20) ---

def test_short_moves_never_reach_their_speed() -> None:
    from fabqueue.core.print_time import effective_speed as _effective_speed

    long_run = _effective_speed(80.0, 200.0, 1250.0, 8.0)
    short_run = _effective_speed(80.0, 2.0, 1250.0, 8.0)
    assert 70 < long_run < 80  # ramps are a small part of a long line
    assert short_run < 40  # a 2 mm line peaks at √(8² + 1250 × 2) ≈ 51 mm/s, averages less
    assert _effective_speed(80.0, 2.0, 5000.0, 8.0) > short_run  # a stiffer printer is quicker


def test_a_finely_facetted_part_takes_longer_than_a_boxy_one() -> None:
    # the same volumes: perimeters cut into 0.3 mm runs stop at every joint
    boxy = cube(footprint_mm2=400.0, wall_mm2=1600.0, segment_mm=20.0)
    facetted = cube(footprint_mm2=400.0, wall_mm2=1600.0, segment_mm=0.3)
    assert facetted.seconds > boxy.seconds * 1.2
    assert facetted.material_g == boxy.material_g


def test_perimeters_slow_only_at_joints_that_turn_enough() -> None:
    # per layer 80 mm of outline: 96 joints of 3.75° (a smooth cylinder) cost nothing at
    # 45 mm/s (the velocity turns by 2.9 mm/s, under the 8 mm/s jerk); 4 square corners do
    from fabqueue.core.print_time import perimeter_speed

    smooth = perimeter_speed(45.0, 800.0, 8.0, 80.0, 1, [(math.radians(3.75), 96 * 20.0)], 20.0)
    square = perimeter_speed(45.0, 800.0, 8.0, 80.0, 1, [(math.pi / 2, 4 * 20.0)], 20.0)
    jagged = perimeter_speed(45.0, 800.0, 8.0, 80.0, 1, [(math.pi / 2, 40 * 20.0)], 20.0)
    assert smooth > 40  # only the seam
    assert jagged < square < smooth


def test_small_loops_print_at_the_small_perimeter_speed() -> None:
    # the same cube, once as a 80 mm loop per layer and once said to be a 30 mm one
    big = cube(footprint_mm2=400.0, wall_mm2=1600.0, loops=[(20.0, 80.0, 0, True)])
    small = cube(footprint_mm2=400.0, wall_mm2=1600.0, loops=[(20.0, 30.0, 0, True)])
    assert small.seconds > big.seconds * 1.2
    # a hole through it is travelled to, retracting, in every layer
    holed = cube(footprint_mm2=400.0, wall_mm2=1600.0, loops=[(20.0, 80.0, 1, True)])
    assert holed.seconds > big.seconds + 100 * 0.1


def test_gentler_acceleration_is_slower() -> None:
    quick = cube(PrintParams(perimeter_acceleration=4000.0, infill_acceleration=4000.0,
                             default_acceleration=4000.0))
    slow = cube(PrintParams(perimeter_acceleration=300.0, infill_acceleration=300.0,
                            default_acceleration=300.0))
    assert slow.seconds > quick.seconds * 1.2


def test_small_layers_are_slowed_for_cooling() -> None:
    # a 3 mm pillar: each layer prints in under a second, PrusaSlicer stretches it toward
    # 5 s but no move below min_print_speed; with the slowdown off the estimate is shorter
    pillar = {"volume_mm3": 90.0, "surface_mm2": 138.0, "bbox_mm": (3.0, 3.0, 10.0),
              "segment_mm": 3.0, "density_g_cm3": PLA_DENSITY, "price_per_kg": 25.0}
    cooled = estimate_print(**pillar, params=PrintParams())
    hot = estimate_print(**pillar, params=PrintParams(slowdown_below_layer_time_s=0.0))
    layers = 10.0 / PrintParams().layer_height_mm
    assert cooled.seconds > hot.seconds * 2
    assert cooled.seconds <= layers * PrintParams().slowdown_below_layer_time_s + hot.seconds
    quicker_floor = estimate_print(**pillar, params=PrintParams(min_print_speed_mm_s=20.0))
    assert hot.seconds < quicker_floor.seconds < cooled.seconds
