"""GRBL's planner model for laser time estimates (pure)."""

from __future__ import annotations

import math

import pytest

from fabqueue.laser.motion import GrblMachine, line_seconds, total_seconds

LASER = GrblMachine(max_rate_mm_min=(6000, 6000), accel_mm_s2=(1000, 1000))


def circle(r: float, n: int, feed: float) -> list[str]:
    return [f"G1 X{r * math.cos(2 * math.pi * i / n):.3f} Y{r * math.sin(2 * math.pi * i / n):.3f}"
            f" F{feed:g}" for i in range(n + 1)]


def test_a_single_move_is_a_trapezoid() -> None:
    # 100 mm at 100 mm/s, 1000 mm/s²: 0.1 s up, 0.1 s down (5 mm each), 0.9 s cruising
    assert total_seconds(["G1 X100 F6000"], LASER) == pytest.approx(1.1)
    # too short to reach the feed: a triangle, sqrt(L/a) each way
    assert total_seconds(["G1 X1 F6000"], LASER) == pytest.approx(2 * math.sqrt(0.001), rel=1e-6)


def test_corners_cost_time_and_junction_deviation_buys_it_back() -> None:
    square = ["G1 X20 F6000", "G1 Y20", "G1 X0", "G1 Y0"]
    feed_only = 80 / 100
    tight = total_seconds(square, GrblMachine(junction_deviation_mm=0.001))
    loose = total_seconds(square, GrblMachine(junction_deviation_mm=0.2))
    assert feed_only < loose < tight


def test_diagonal_moves_get_the_tightest_axis_limits() -> None:
    slow_y = GrblMachine(max_rate_mm_min=(6000, 600), accel_mm_s2=(1000, 1000))
    assert total_seconds(["G0 Y50"], slow_y) > 5.0
    assert total_seconds(["G0 X50"], slow_y) < 1.0


def test_look_ahead_slows_long_runs_of_tiny_segments() -> None:
    # 600 segments of 0.05 mm in a straight line: 15 blocks hold 0.75 mm, so GRBL can't
    # reach 100 mm/s (it must always be able to stop within what it has planned)
    tiny = ["G1 X0 F6000"] + [f"G1 X{0.05 * i:.2f}" for i in range(1, 601)]
    assert total_seconds(tiny, LASER) > 2 * total_seconds(["G1 X30 F6000"], LASER)


def test_sync_lines_stop_the_motion_and_non_moves_take_no_time() -> None:
    seconds = line_seconds(["G21 G90", "M4 S500", "G1 X50 F6000", "M9", "G1 X100"], LASER)
    assert seconds[0] == seconds[1] == seconds[3] == 0
    assert seconds[2] == pytest.approx(seconds[4])  # both start and end at standstill
    straight = total_seconds(["G1 X50 F6000", "G1 X100"], LASER)
    assert straight < seconds[2] + seconds[4]


def test_curves_take_longer_than_length_over_feed() -> None:
    lines = circle(10, 64, 3000)
    assert total_seconds(lines, LASER) > 1.1 * (2 * math.pi * 10 / 50)


def test_settings_from_grbl() -> None:
    machine = GrblMachine.from_settings({"$110": "3000", "$121": 200, "$11": 0.02})
    assert machine.max_rate_mm_min == (3000, 6000) and machine.accel_mm_s2 == (1000, 200)
    assert machine.junction_deviation_mm == 0.02
    assert GrblMachine.from_settings({}, max_speed_mm_min=4000).max_rate_mm_min == (4000, 4000)


def test_the_device_files_grbl_settings_reach_the_estimate() -> None:
    import numpy as np

    from fabqueue.core.specs import LaserSpec
    from fabqueue.laser.gcode import generate_gcode
    from fabqueue.laser.materials import LaserMaterial, LaserOperation, Operation
    from fabqueue.laser.paths import Toolpath
    from fabqueue.laser.planning import plan_toolpaths
    from fabqueue.store.inventory import DeviceIn

    material = LaserMaterial(
        id="ply", name="Plywood", thickness_mm=3.0, sheet_mm=(600.0, 400.0),
        price_per_sheet=4.0, operations={Operation.CUT: LaserOperation(3000, 90, passes=1)},
    )  # fmt: skip
    square = [Toolpath(Operation.CUT, "#ff0000", np.array(
        [[0, 0], [20, 0], [20, 20], [0, 20]], dtype=float), True)]
    slow = DeviceIn(id="l", site="kc", kind="laser", driver="grbl", port="/dev/x",
                    bed_mm=(100, 100), grbl={"$120": 50, "$121": 50}).settings()
    seconds = {}
    for name, settings in (("default", {}), ("slow", slow)):
        laser = LaserSpec(id="l", site="kc", bed_mm=(100.0, 100.0), settings=settings)
        seconds[name] = generate_gcode(plan_toolpaths(square), material, laser).total_seconds
    assert seconds["slow"] > 1.5 * seconds["default"]
