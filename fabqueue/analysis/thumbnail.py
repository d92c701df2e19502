"""A PNG preview of a mesh without a display: numpy z-buffer, flat Lambert shading, Pillow.

Each triangle is sampled on a barycentric lattice fine enough that neighbouring samples are
at most a pixel apart, so large faces fill and tiny faces still leave a dot; a z-buffer keeps
the nearest sample per pixel. Rendered at twice the size and scaled down to smooth edges.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

_MAX_FACES = 400_000  # beyond this a random subset looks the same at thumbnail size
_FACE_CHUNK = 1 << 16  # faces shaded and sized at a time
_SAMPLE_CHUNK = 1 << 19  # samples drawn at a time: ~20 MB of temporaries at most
_SUPERSAMPLE = 2
_MARGIN = 0.06
_BACKGROUND = (246, 246, 244)
_COLOUR = np.array((235, 125, 45), dtype=np.float32)  # filament orange
_SPLAT = np.array([[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [0.5, 0.5]], dtype=np.float32)
_AZIMUTH_DEG = 35.0  # camera to the front right, looking slightly down: a 3/4 view
_ELEVATION_DEG = 30.0


def _camera() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (right, up, towards the camera) unit vectors of the view."""
    az, el = np.radians(_AZIMUTH_DEG), np.radians(_ELEVATION_DEG)
    towards = np.array([np.sin(az) * np.cos(el), -np.cos(az) * np.cos(el), np.sin(el)])
    right = np.cross((0.0, 0.0, 1.0), towards)
    right /= np.linalg.norm(right)
    up = np.cross(towards, right)
    return right, up, towards


def _lattice(m: int) -> np.ndarray:
    """Barycentric weights (L, 3) of the points i/m, j/m of a triangle, m subdivisions."""
    i, j = np.meshgrid(np.arange(m + 1), np.arange(m + 1), indexing="ij")
    keep = i + j <= m
    a, b = i[keep] / m, j[keep] / m
    return np.stack((1 - a - b, a, b), axis=1).astype(np.float32)


def render_mesh_thumbnail(
    vertices: np.ndarray, faces: np.ndarray, out: Path, size: int = 256
) -> None:
    """Write a ``size``×``size`` PNG of the mesh seen from the front right, above."""
    from PIL import Image

    image = _render(np.asarray(vertices, dtype=np.float32), np.asarray(faces), size)
    Image.fromarray(image).resize((size, size), Image.Resampling.LANCZOS).save(out, "PNG")


def _render(vertices: np.ndarray, faces: np.ndarray, size: int) -> np.ndarray:
    pixels = size * _SUPERSAMPLE
    canvas = np.empty((pixels * pixels, 3), dtype=np.uint8)
    canvas[:] = _BACKGROUND
    if len(faces) == 0 or len(vertices) == 0:
        return canvas.reshape(pixels, pixels, 3)
    if len(faces) > _MAX_FACES:
        pick = np.random.default_rng(0).choice(len(faces), _MAX_FACES, replace=False)
        faces = faces[pick]
    right, up, towards = _camera()
    centre = np.array(
        [(vertices[:, i].min() + vertices[:, i].max()) / 2 for i in range(3)], dtype=np.float32
    )  # column by column: far faster than reducing axis=0 of an (n, 3) array
    view = (vertices - centre) @ np.stack((right, up, towards), axis=1).astype(np.float32)
    extent = max(float(np.ptp(view[:, 0])), float(np.ptp(view[:, 1])), 1e-9)
    scale = pixels * (1 - 2 * _MARGIN) / extent
    screen = np.empty_like(view)
    screen[:, 0] = view[:, 0] * scale + pixels / 2
    screen[:, 1] = pixels / 2 - view[:, 1] * scale
    screen[:, 2] = view[:, 2]
    # per face: its shade and its lattice size (in chunks: a few MB at a time, not 36 bytes
    # per face for each of the corners, their edges and their view coordinates at once)
    shade = np.empty(len(faces), dtype=np.float32)
    levels = np.empty(len(faces), dtype=np.int64)
    for lo in range(0, len(faces), _FACE_CHUNK):
        part = faces[lo : lo + _FACE_CHUNK]
        shade[lo : lo + len(part)] = _shading(view[part])
        levels[lo : lo + len(part)] = _level(screen[part], pixels)
    del view
    # Every sample in a fixed order (by lattice size, then face), a chunk at a time: the
    # z-buffer keeps the nearest depth so far, and a chunk paints its samples at least that
    # near. A pixel ends with the last of its nearest samples, as if all were drawn at once.
    nearest = np.full(pixels * pixels, -np.inf, dtype=np.float32)
    for m in np.unique(levels):
        chosen = np.flatnonzero(levels == m)
        weights = _lattice(int(m)) if m > 1 else np.full((1, 3), 1 / 3, dtype=np.float32)
        per_face = len(weights) * (len(_SPLAT) if m == 1 else 1)
        step = max(1, _SAMPLE_CHUNK // per_face)
        for lo in range(0, len(chosen), step):
            part = chosen[lo : lo + step]
            _paint(canvas, nearest, screen[faces[part]], shade[part], weights, pixels, m == 1)
    return canvas.reshape(pixels, pixels, 3)


def _level(corners: np.ndarray, pixels: int) -> np.ndarray:
    """Lattice subdivisions of each face: its longest side in pixels, rounded up to steps of
    25% (few sizes, so faces batch by size, and few samples wasted)."""
    longest = np.max(
        np.linalg.norm(corners[:, [1, 2, 0], :2] - corners[:, :, :2], axis=2), axis=1
    )
    steps = np.clip(np.ceil(longest), 1, pixels).astype(np.int64)
    return np.ceil(1.25 ** np.ceil(np.log(steps) / np.log(1.25))).astype(np.int64)


def _paint(
    canvas: np.ndarray, nearest: np.ndarray, corners: np.ndarray, shade: np.ndarray,
    weights: np.ndarray, pixels: int, splat: bool,
) -> None:
    """Sample these faces (corners in screen space) and paint the samples nearest so far."""
    samples = np.matmul(weights, corners)  # (n, L, 3)
    xy = samples[..., :2].reshape(-1, 2)
    depth = samples[..., 2].ravel()
    value = np.repeat(shade, len(weights))
    del samples
    if splat:  # sub-pixel faces: splat the centre over 2×2 pixels so no gaps show through
        xy = (xy[:, None, :] + _SPLAT).reshape(-1, 2)
        depth, value = np.repeat(depth, len(_SPLAT)), np.repeat(value, len(_SPLAT))
    xy = xy.astype(np.int64)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < pixels) & (xy[:, 1] >= 0) & (xy[:, 1] < pixels)
    pixel = xy[inside, 1] * pixels + xy[inside, 0]
    del xy
    depth, value = depth[inside], value[inside]
    np.maximum.at(nearest, pixel, depth)
    front = depth >= nearest[pixel]
    canvas[pixel[front]] = np.clip(_COLOUR * value[front, None], 0, 255).astype(np.uint8)


def _shading(triangles: np.ndarray) -> np.ndarray:
    """Flat Lambert shade per face, two-sided (inverted normals still look solid)."""
    normal = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    length = np.linalg.norm(normal, axis=1)
    normal /= np.maximum(length, 1e-12)[:, None]
    # in view coordinates: light from over the viewer's left shoulder
    light = np.array([-0.35, 0.55, 0.76], dtype=np.float32)
    light /= np.linalg.norm(light)
    return (0.35 + 0.65 * np.abs(normal @ light)).astype(np.float32)
