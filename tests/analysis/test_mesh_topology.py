"""The numpy mesh core on small meshes whose answers are known, including its slow paths."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from fabqueue.analysis import topology


def triangles_of(mesh: trimesh.Trimesh) -> np.ndarray:
    return np.ascontiguousarray(mesh.vertices[mesh.faces].astype(np.float32))


def analyse(triangles: np.ndarray) -> tuple[topology.Merged, topology.EdgeFacts, int]:
    merged = topology.merge_vertices(triangles)
    facts, touching = topology.edge_facts(merged)
    bodies, _ = topology.body_labels(len(merged.faces), touching)
    return merged, facts, bodies


def two_boxes() -> np.ndarray:
    a = trimesh.creation.box(extents=(10, 10, 10))
    b = trimesh.creation.box(extents=(10, 10, 10))
    b.apply_translation((30, 0, 0))
    return np.concatenate([triangles_of(a), triangles_of(b)])


def test_merge_recovers_the_indexed_mesh() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=3)
    merged = topology.merge_vertices(triangles_of(sphere))
    assert len(merged.vertices) == len(sphere.vertices)
    assert merged.faces.dtype == np.int32
    np.testing.assert_array_equal(merged.vertices[merged.faces], triangles_of(sphere))
    # the corner sort groups corners by vertex, ascending
    assert np.all(np.diff(merged.corner_vertex) >= 0)
    np.testing.assert_array_equal(merged.faces.ravel()[merged.corner_order],
                                  merged.corner_vertex)


def test_negative_zero_and_cad_noise_are_the_same_point() -> None:
    tri = np.array([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0]],
                    [[-0.0, 1e-17, 0], [0, 1, 0], [-1, 0, 0]]], dtype=np.float32)
    merged = topology.merge_vertices(tri)
    assert len(merged.vertices) == 4


def test_hash_collisions_fall_back_to_a_correct_merge(monkeypatch: pytest.MonkeyPatch) -> None:
    # a "hash" that is the rank of x: small numbers whose top bits (the sorted part) all
    # collide, so corners of different x interleave and the full-hash fallback must take over
    monkeypatch.setattr(topology, "_hash", lambda grid: np.unique(
        grid[:, 0], return_inverse=True)[1].astype(np.uint64).ravel())
    sphere = trimesh.creation.icosphere(subdivisions=2)
    merged = topology.merge_vertices(triangles_of(sphere))
    # grouping by this hash merges points of equal x (a bad hash merges too much), but every
    # corner must still map to a vertex with its own x
    np.testing.assert_array_equal(merged.vertices[merged.faces][:, :, 0],
                                  triangles_of(sphere)[:, :, 0])
    # one vertex per distinct x: without the fallback, interleaved runs would split them
    assert len(merged.vertices) == len(np.unique(triangles_of(sphere)[:, :, 0]))


def test_closed_box_is_watertight_and_consistent() -> None:
    _, facts, bodies = analyse(triangles_of(trimesh.creation.box()))
    assert facts.watertight and facts.winding_consistent and bodies == 1


def test_open_box_has_open_edges() -> None:
    _, facts, _ = analyse(triangles_of(trimesh.creation.box())[2:])
    assert not facts.watertight and facts.open_edges == 4


def test_flipped_face_is_found() -> None:
    tri = triangles_of(trimesh.creation.box())
    tri[0] = tri[0, ::-1]
    _, facts, _ = analyse(tri)
    assert facts.watertight and not facts.winding_consistent and facts.flipped_edges == 3


def test_three_faces_on_one_edge_are_non_manifold() -> None:
    tri = triangles_of(trimesh.creation.box())
    fin = np.array([[tri[0, 0], tri[0, 1], [5.0, 5.0, 5.0]]], dtype=np.float32)
    _, facts, _ = analyse(np.concatenate([tri, fin]))
    assert facts.nonmanifold_edges >= 1


def test_bodies_touching_at_a_corner_are_separate() -> None:
    a = trimesh.creation.box(extents=(10, 10, 10))
    b = trimesh.creation.box(extents=(10, 10, 10))
    b.apply_translation((10, 10, 10))  # shares exactly one vertex with a
    _, facts, bodies = analyse(np.concatenate([triangles_of(a), triangles_of(b)]))
    assert bodies == 2 and facts.watertight


def test_two_boxes_two_bodies() -> None:
    assert analyse(two_boxes())[2] == 2


def test_unpacked_edge_path_gives_the_same_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    merged = topology.merge_vertices(two_boxes())
    packed_facts, packed_pairs = topology.edge_facts(merged)
    monkeypatch.setattr(topology, "_packs", lambda *_: False)
    facts, pairs = topology.edge_facts(merged)
    assert facts == packed_facts
    assert {tuple(sorted(p)) for p in pairs.tolist()} == {
        tuple(sorted(p)) for p in packed_pairs.tolist()}


def test_drop_faces_renumbers() -> None:
    tri = triangles_of(trimesh.creation.box())
    merged = topology.merge_vertices(tri)
    drop = np.zeros(len(tri), dtype=bool)
    drop[[0, 5]] = True
    smaller = topology.drop_faces(merged, drop)
    assert len(smaller.faces) == 10
    np.testing.assert_array_equal(smaller.faces.ravel()[smaller.corner_order],
                                  smaller.corner_vertex)
    assert topology.edge_facts(smaller)[0].open_edges > 0


def test_measures_of_a_box() -> None:
    tri = triangles_of(trimesh.creation.box(extents=(10, 20, 30)))
    merged = topology.merge_vertices(tri)
    _, touching = topology.edge_facts(merged)
    bodies, labels = topology.body_labels(len(merged.faces), touching)
    m = topology.measure(tri, labels, bodies)
    assert m.volume_mm3 == pytest.approx(6000)
    assert m.surface_mm2 == pytest.approx(2 * (200 + 300 + 600))
    assert m.footprint_mm2 == pytest.approx(200)
    assert m.wall_mm2 == pytest.approx(2 * (300 + 600))
    np.testing.assert_allclose(m.body_volumes_mm3, [6000])


def test_volume_far_from_the_origin_keeps_precision() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=10)
    sphere.apply_translation((5000, -3000, 200))
    tri = triangles_of(sphere)
    m = topology.measure(tri, np.zeros(len(tri), dtype=np.int32), 1)
    assert m.volume_mm3 == pytest.approx(sphere.volume, rel=1e-4)


def test_body_labels_numpy_and_scipy_agree() -> None:
    rng = np.random.default_rng(3)
    n = 5000
    # random forest of small components plus a long path numbered backwards
    pairs = rng.integers(0, 3000, (2500, 2))
    path = np.stack((np.arange(4999, 3000, -1), np.arange(4998, 2999, -1)), axis=1)
    touching = np.concatenate([pairs, path]).astype(np.int64)
    count, labels = topology.body_labels(n, touching)
    expected, expected_labels = topology._scipy_body_labels(n, touching)
    assert count == expected
    # same partition (numbering may differ)
    assert len({(a, b) for a, b in zip(labels.tolist(), expected_labels.tolist(),
                                       strict=True)}) == count


def test_body_labels_fall_back_when_hooking_does_not_settle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(topology, "_MAX_HOOK_ROUNDS", 1)
    path = np.stack((np.arange(0, 99), np.arange(1, 100)), axis=1)[::-1].copy()
    count, labels = topology.body_labels(200, path)
    assert count == 101 and labels[0] == labels[99] and labels[100] != labels[0]
