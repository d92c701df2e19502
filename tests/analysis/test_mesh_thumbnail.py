"""The headless thumbnail: a real PNG that shows the part, fast even for big meshes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

from fabqueue.analysis.thumbnail import render_mesh_thumbnail

BACKGROUND = (246, 246, 244)


def render(mesh: trimesh.Trimesh, tmp_path: Path, size: int = 256) -> np.ndarray:
    out = tmp_path / "thumb.png"
    render_mesh_thumbnail(mesh.vertices.astype(np.float32), mesh.faces.astype(np.int32), out,
                          size)
    with Image.open(out) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def part_mask(pixels: np.ndarray) -> np.ndarray:
    return np.abs(pixels.astype(int) - BACKGROUND).sum(axis=2) > 30


def test_cube_fills_the_middle_with_shaded_faces(tmp_path: Path) -> None:
    pixels = render(trimesh.creation.box(extents=(20, 20, 20)), tmp_path)
    assert pixels.shape == (256, 256, 3)
    mask = part_mask(pixels)
    assert mask[128, 128] and not mask[2, 2] and not mask[253, 253]
    assert 0.3 < mask.mean() < 0.8
    # three visible faces, three different Lambert shades: it reads as a solid
    shades = {tuple(pixels[y, x]) for y, x in ((70, 128), (160, 90), (160, 170))}
    assert len(shades) == 3


def test_sphere_is_round_and_has_no_holes(tmp_path: Path) -> None:
    pixels = render(trimesh.creation.icosphere(subdivisions=4), tmp_path)
    mask = part_mask(pixels)
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    assert abs((rows[-1] - rows[0]) - (cols[-1] - cols[0])) <= 3  # as tall as wide
    centre = mask[100:156, 100:156]
    assert centre.all()


def test_flat_part_and_inverted_normals_still_render(tmp_path: Path) -> None:
    box = trimesh.creation.box(extents=(40, 40, 2))
    box.invert()
    assert part_mask(render(box, tmp_path, size=64)).mean() > 0.1


def test_million_triangles_well_under_a_second(tmp_path: Path) -> None:
    sphere = trimesh.creation.icosphere(subdivisions=7)  # 327,680 faces
    vertices = sphere.vertices.astype(np.float32)
    faces = sphere.faces.astype(np.int32)
    # three copies side by side: ~1 M triangles
    all_vertices = np.concatenate([vertices + np.array([2.5 * i, 0, 0]) for i in range(3)])
    all_faces = np.concatenate([faces + i * len(vertices) for i in range(3)])
    out = tmp_path / "big.png"
    # ~0.3 s on an idle 2-core machine: timed in bench/bench_unit_timings.py
    render_mesh_thumbnail(all_vertices, all_faces, out)
    with Image.open(out) as image:
        assert part_mask(np.asarray(image.convert("RGB"))).mean() > 0.1
