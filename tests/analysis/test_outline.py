"""The outline statistics the time estimate reads off the mesh (fabqueue/analysis/outline.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import trimesh

from fabqueue.analysis import topology
from fabqueue.analysis.outline import body_outlines, outline_turns


def measured(mesh: trimesh.Trimesh) -> tuple:
    triangles = np.asarray(mesh.triangles, dtype=np.float32)
    merged = topology.merge_vertices(triangles)
    edges, touching = topology.edge_facts(merged)
    bodies, face_body = topology.body_labels(len(merged.faces), touching)
    return (outline_turns(triangles, merged.faces, touching),
            body_outlines(triangles, merged.faces, face_body, bodies, len(merged.vertices),
                          edges.watertight))


def test_a_box_turns_four_square_corners_per_layer() -> None:
    outline, loops = measured(trimesh.creation.box(extents=(30, 20, 10)))
    turned = {round(math.degrees(angle)): rise for angle, rise in outline.turns
              if angle > math.radians(1)}
    assert turned == {90: pytest.approx(4 * 10.0)}  # four vertical edges, 10 mm each
    assert loops == [(pytest.approx(10.0), pytest.approx(100.0), 0, True)]
    assert outline.tight_concave_mm2 == 0.0


def test_a_smooth_cylinder_turns_a_few_degrees_at_each_joint() -> None:
    outline, _ = measured(trimesh.creation.cylinder(radius=15, height=30, sections=96))
    bent = [(angle, rise) for angle, rise in outline.turns if angle > math.radians(1)]
    assert max(angle for angle, _ in bent) < math.radians(5)  # no corner the jerk would slow
    # one closed loop per layer: its joints turn 360° in all
    assert sum(angle * rise for angle, rise in bent) / 30.0 == pytest.approx(2 * math.pi,
                                                                             rel=0.01)


def test_a_tube_has_a_hole_and_only_a_small_one_is_tight() -> None:
    wide, wide_loops = measured(trimesh.creation.annulus(r_min=10, r_max=20, height=40,
                                                         sections=96))
    narrow, _ = measured(trimesh.creation.annulus(r_min=3, r_max=20, height=40, sections=96))
    assert wide_loops[0][2] == 1  # one hole through it (genus 1)
    assert wide.tight_concave_mm2 == 0.0  # a 10 mm bore: a 63 mm loop, not a small one
    # a 3 mm bore's wall (2π × 3 × 40 mm²) is a small loop's
    assert narrow.tight_concave_mm2 == pytest.approx(2 * math.pi * 3 * 40, rel=0.05)


def test_bodies_standing_apart_and_overlapping() -> None:
    apart = trimesh.util.concatenate([trimesh.creation.box(extents=(10, 10, 10)),
                                      trimesh.creation.box(extents=(10, 10, 4)).apply_translation(
                                          (30, 0, -3))])
    _, loops = measured(apart)
    assert sorted(round(h) for h, *_ in loops) == [4, 10]
    assert all(alone for *_, alone in loops)
    joined = trimesh.util.concatenate([trimesh.creation.box(extents=(10, 10, 10)),
                                       trimesh.creation.box(extents=(10, 10, 4)).apply_translation(
                                           (5, 0, 0))])
    _, loops = measured(joined)
    assert not any(alone for *_, alone in loops)


def test_signed_turning_counts_outer_loops_less_holes() -> None:
    box, _ = measured(trimesh.creation.box(extents=(30, 20, 10)))
    tube, _ = measured(trimesh.creation.annulus(r_min=10, r_max=20, height=40, sections=96))
    assert box.net_turn_mm / (2 * math.pi * 10) == pytest.approx(1.0, abs=0.01)
    assert tube.net_turn_mm / (2 * math.pi * 40) == pytest.approx(0.0, abs=0.01)  # 1 − 1
