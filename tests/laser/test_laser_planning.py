"""Planning: operation order, holes before parts, short travel, good start points, speed."""

from __future__ import annotations

import random

import numpy as np
import pytest

from fabqueue.laser.materials import Operation
from fabqueue.laser.paths import Toolpath
from fabqueue.laser.planning import (
    containers,
    plan_toolpaths,
    point_in_polygon,
    rotate_to_nearest,
    travel_length,
)


def square(x: float, y: float, size: float, op: Operation = Operation.CUT) -> Toolpath:
    points = np.array([[x, y], [x + size, y], [x + size, y + size], [x, y + size]], dtype=float)
    return Toolpath(op, "#ff0000", points, True)


def line(x0: float, y0: float, x1: float, y1: float, op: Operation = Operation.SCORE) -> Toolpath:
    return Toolpath(op, "#0000ff", np.array([[x0, y0], [x1, y1]], dtype=float), False)


def nested_sheet(parts: int, seed: int = 7) -> list[Toolpath]:
    """``parts`` 20 mm squares in a grid, each with two 4 mm square holes, shuffled."""
    paths: list[Toolpath] = []
    columns = 20
    for k in range(parts):
        x, y = (k % columns) * 25.0, (k // columns) * 25.0
        paths += [square(x, y, 20), square(x + 3, y + 8, 4), square(x + 13, y + 8, 4)]
    random.Random(seed).shuffle(paths)
    return paths


def same_path(a: Toolpath, b: Toolpath) -> bool:
    return a.closed == b.closed and {tuple(p) for p in a.points.tolist()} == {
        tuple(p) for p in b.points.tolist()}


def test_engrave_then_score_then_cut() -> None:
    paths = [square(0, 0, 10), line(0, 0, 5, 5), line(1, 1, 2, 1, Operation.ENGRAVE),
             square(20, 0, 10), line(30, 30, 35, 35)]
    ops = plan_toolpaths(paths).operations()
    assert ops == [Operation.ENGRAVE, Operation.SCORE, Operation.SCORE, Operation.CUT,
                   Operation.CUT]


def test_point_in_polygon_and_containment() -> None:
    outer, hole, beside = square(0, 0, 100), square(10, 10, 10), square(200, 0, 10)
    assert point_in_polygon(np.array([15.0, 15.0]), outer.points)
    assert not point_in_polygon(np.array([150.0, 15.0]), outer.points)
    part_in_hole = square(40, 40, 5)
    big_hole = square(30, 30, 30)
    slit = line(12, 50, 18, 50, Operation.CUT)  # an open cut inside the part
    result = containers([outer, hole, beside, big_hole, part_in_hole, slit])
    assert result[0] == [] and result[1] == [0] and result[2] == []
    assert sorted(result[4]) == [0, 3]  # inside the hole and the part around it
    assert result[5] == [0]


def test_a_line_drawn_twice_does_not_contain_itself() -> None:
    assert containers([square(0, 0, 10), square(0, 0, 10)]) == [[], []]


def test_inner_contours_are_cut_before_the_parts_around_them() -> None:
    outer, hole = square(0, 0, 100), square(2, 2, 5)
    # The head starts right at the outer contour's corner: greedy would cut it first.
    plan = plan_toolpaths([outer, hole], start=(0.0, 0.0))
    assert same_path(plan.paths[0], hole) and same_path(plan.paths[1], outer)


def test_nested_sheet_keeps_every_hole_before_its_part() -> None:
    paths = nested_sheet(60)
    plan = plan_toolpaths(paths)
    assert len(plan.paths) == len(paths)
    parents = containers(plan.paths)
    for position, owners in enumerate(parents):
        assert all(owner > position for owner in owners), "a part was cut before its hole"


def test_two_opt_is_never_worse_than_nearest_neighbour() -> None:
    rng = np.random.default_rng(11)
    paths = [square(x, y, 2) for x, y in rng.uniform(0, 400, (150, 2))]
    paths += [line(x, y, x + 5, y + 3) for x, y in rng.uniform(0, 400, (50, 2))]
    greedy = plan_toolpaths(paths, time_budget_s=0.0)
    improved = plan_toolpaths(paths, time_budget_s=0.5)
    assert improved.travel_mm <= greedy.travel_mm + 1e-9
    assert improved.travel_mm < 0.97 * greedy.travel_mm  # on random points it does pay


def test_closed_contours_start_at_the_vertex_nearest_the_head() -> None:
    ring = np.array([[10, 10], [20, 10], [20, 20], [10, 20]], dtype=float)
    rotated = rotate_to_nearest(ring, (21, 21))
    assert rotated[0].tolist() == [20, 20]
    assert {tuple(p) for p in rotated.tolist()} == {tuple(p) for p in ring.tolist()}
    plan = plan_toolpaths([Toolpath(Operation.CUT, "#ff0000", ring, True)], start=(21, 21))
    assert plan.paths[0].points[0].tolist() == [20, 20]
    assert plan.travel_mm == pytest.approx(np.hypot(1, 1))


def test_open_paths_are_entered_from_the_nearer_end() -> None:
    plan = plan_toolpaths([line(100, 0, 10, 0)], start=(0.0, 0.0))
    assert plan.paths[0].points[0].tolist() == [10, 0]
    assert plan.travel_mm == pytest.approx(10)


def test_travel_length_counts_every_laser_off_move() -> None:
    paths = [line(10, 0, 20, 0), square(30, 0, 5)]
    # 0,0 → 10,0 (10), 20,0 → 30,0 (10); a closed square ends where it began.
    assert travel_length(paths) == pytest.approx(20)
    assert travel_length([]) == 0.0


def test_two_hundred_nested_parts_plan_fast_and_halve_travel() -> None:
    paths = nested_sheet(200)
    drawing_order = travel_length(paths)
    plan = plan_toolpaths(paths)  # how fast: bench/bench_unit_timings.py
    assert plan.travel_mm <= 0.5 * drawing_order


def test_whole_parts_are_reordered_when_holes_pin_single_paths() -> None:
    # Parts with holes scattered over free slots: single-path 2-opt can't move a hole past
    # its part, so the gain comes from moving parts as units.
    rng = random.Random(5)
    slots = rng.sample([(c, r) for c in range(16) for r in range(8)], 50)
    paths = [p for c, r in slots for p in (square(c * 25.0, r * 25.0, 20),
                                           square(c * 25.0 + 3, r * 25.0 + 8, 4),
                                           square(c * 25.0 + 13, r * 25.0 + 8, 4))]
    rng.shuffle(paths)
    greedy = plan_toolpaths(paths, time_budget_s=0.0)
    improved = plan_toolpaths(paths, time_budget_s=1.0)
    assert improved.travel_mm < 0.99 * greedy.travel_mm
    parents = containers(improved.paths)
    assert all(owner > pos for pos, owners in enumerate(parents) for owner in owners)


def test_a_sheet_outline_around_everything_is_cut_last() -> None:
    # One big part holding every other path (more than the small-part shortcut handles).
    paths = [*nested_sheet(60), square(-5, -5, 520)]
    random.Random(3).shuffle(paths)
    plan = plan_toolpaths(paths)
    assert plan.paths[-1].points.max() == pytest.approx(515)
    parents = containers(plan.paths)
    assert all(owner > pos for pos, owners in enumerate(parents) for owner in owners)
    assert plan.travel_mm <= 0.5 * travel_length(paths)
