"""Bodies pushed into one another are measured as their union (what a slicer prints)."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from fabqueue.analysis.overlap import outside_share, union_measures


def _triangles(*meshes: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
    triangles = np.concatenate([m.triangles for m in meshes]).astype(np.float32)
    face_body = np.concatenate([np.full(len(m.faces), i) for i, m in enumerate(meshes)])
    return triangles, face_body


def _box(size: float, at: tuple[float, float, float]) -> trimesh.Trimesh:
    # subdivided, so faces straddling the other box are small against it
    box = trimesh.creation.box(extents=(size, size, size))
    box = box.subdivide().subdivide().subdivide()
    box.apply_translation(at)
    return box


def test_two_overlapping_cubes_measure_as_their_union() -> None:
    # two 10 mm cubes, the second shifted 5, 3 and 2 mm: they share 5 × 7 × 8 mm
    triangles, face_body = _triangles(_box(10, (0, 0, 0)), _box(10, (5, 3, 2)))
    share = outside_share(triangles, face_body, 2)
    assert share is not None
    volume, surface, footprint, wall = union_measures(triangles, share)
    assert volume == pytest.approx(2000 - 280, rel=0.03)
    walls = 2 * 4 * 100 - 2 * (5 + 7) * 8  # each box's sides less those inside the other
    assert wall == pytest.approx(walls, rel=0.03)
    assert footprint == pytest.approx(200 - 35, rel=0.03)
    assert surface == pytest.approx(2 * 600 - 2 * (5 * 7 + 7 * 8 + 5 * 8), rel=0.03)


def test_bodies_apart_or_a_hollow_are_left_as_they_are() -> None:
    apart, apart_body = _triangles(_box(10, (0, 0, 0)), _box(10, (20, 0, 0)))
    assert outside_share(apart, apart_body, 2) is None
    inner = _box(4, (0, 0, 0))
    inner.invert()  # an inner shell facing inwards: a deliberate hollow
    hollow, hollow_body = _triangles(_box(10, (0, 0, 0)), inner)
    assert outside_share(hollow, hollow_body, 2) is None
    single, single_body = _triangles(_box(10, (0, 0, 0)))
    assert outside_share(single, single_body, 1) is None
