"""How a sliced layer's outline turns at its joints, and its loops, measured on the mesh.

A layer cuts every face it crosses into one straight segment; where it crosses an edge shared
by two faces, the outline turns by the angle between the two faces' horizontal directions
(their normals projected on the bed). The printer keeps its speed through a joint that turns
a few degrees and slows to the jerk speed at a square corner, so the time estimate needs the
joints by turning angle: a smooth 96-sided cylinder has 96 joints of 3.75° (none slows it),
a box four of 90°. An edge is crossed by one layer per layer height it spans, so per angle
the statistic is the edges' summed z-extent in mm: per layer, that ÷ the part's height joints.
Issue 20; the estimate itself is ``fabqueue.core.estimates``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# coplanar faces' joints (no bend) and PrusaSlicer's small loops, as the estimate counts them
from fabqueue.core.print_time import MIN_TURN_RAD, SMALL_LOOP_RADIUS_MM

#: Turning-angle bins over 0…180°: 5° each, finer than the jerk rule bends at any speed.
TURN_BINS = 36
#: Above this many shared edges (or faces) every k-th stands for k: a distribution needs no
#: million samples (the 1M-triangle upload keeps its time and memory budget).
_TURN_SAMPLE = 1 << 16


class Outline(NamedTuple):
    turns: list[tuple[float, float]]  # (turning angle rad, Σ z-extent mm) per angle bin
    # side area (mm²) of the concave bends tighter than SMALL_LOOP_RADIUS_MM: small holes
    tight_concave_mm2: float
    # Σ turn × z-extent (rad mm), left turns less right ones: per layer, 2π × (outer loops −
    # holes), whatever the wiggles (they cancel). None when the faces' winding can't be
    # trusted (an open or inconsistently wound mesh: left and right are guesses there)
    net_turn_mm: float | None = None


def outline_turns(triangles: np.ndarray, faces: np.ndarray, touching: np.ndarray,
                  wound: bool = True) -> Outline:
    """The joints between faces by turning angle, and the side area of tight concave bends.

    ``triangles`` (n, 3, 3) float32 and ``faces`` (n, 3) its merged vertex indices, ``touching``
    the (k, 2) pairs of faces sharing an edge (``topology.edge_facts``). Joints between a
    level face and its neighbour are no outline joints (the level face is no wall) and are
    left out, as are edges that no layer crosses (level edges: z-extent 0).

    Walking the outline with the material on the left (the normal turned +90°), a joint
    that turns right is concave: every hole through the part is a loop of them. A bend's
    length (each joint owns half of each face's segment) over its turn is its radius: a
    round hole's, or about a small pocket's side. The side area of the concave bends
    tighter than ``SMALL_LOOP_RADIUS_MM`` is what a slicer prints as small perimeters, and
    the turning summed with its sign counts the loops per layer (``wound``: the mesh is
    closed and consistently wound, so left and right mean something).
    """
    if len(touching) == 0:
        return Outline([], 0.0, 0.0 if wound else None)
    pairs = touching[:: max(1, -(-len(touching) // _TURN_SAMPLE))]
    a, b = pairs[:, 0], pairs[:, 1]
    tri_a, tri_b = triangles[a], triangles[b]  # gathered once (≤ 5 MB each)
    ha, wall_a, width_a = _horizontal_normal(tri_a)
    hb, wall_b, width_b = _horizontal_normal(tri_b)
    # column by column: numpy's reductions along a short last axis are many times slower
    cos = ha[:, 0] * hb[:, 0] + ha[:, 1] * hb[:, 1]
    np.clip(cos, -1.0, 1.0, out=cos)
    turn = np.arccos(cos)
    del cos
    # which way: b lies ahead of a along a's direction (ha turned +90°), or behind it
    step_x = _corner_sum(tri_b, 0) - _corner_sum(tri_a, 0)  # 3 × the centroids' step
    step_y = _corner_sum(tri_b, 1) - _corner_sum(tri_a, 1)
    forward = step_y * ha[:, 0] - step_x * ha[:, 1]
    right = (ha[:, 0] * hb[:, 1] - ha[:, 1] * hb[:, 0]) * forward < 0
    del step_x, step_y, forward, ha, hb
    # the shared edge: the corners of face a that face b also has (two on a manifold edge)
    corners_a, corners_b = faces[a], faces[b]
    top = np.full(len(pairs), -np.inf, dtype=np.float32)
    bottom = np.full(len(pairs), np.inf, dtype=np.float32)
    for i in range(3):
        corner = corners_a[:, i]
        shared = (corner == corners_b[:, 0]) | (corner == corners_b[:, 1]) | (
            corner == corners_b[:, 2])
        z = tri_a[:, i, 2]
        np.maximum(top, np.where(shared, z, -np.inf), out=top)
        np.minimum(bottom, np.where(shared, z, np.inf), out=bottom)
    rise = top - bottom
    del corners_a, corners_b, top, bottom, shared, z, tri_a, tri_b
    keep = wall_a & wall_b & np.isfinite(rise) & (rise > 0)
    turn, rise = turn[keep], rise[keep].astype(np.float64)
    index = np.minimum((turn * (TURN_BINS / np.pi)).astype(np.intp), TURN_BINS - 1)
    length = np.bincount(index, weights=rise, minlength=TURN_BINS)
    angle = np.bincount(index, weights=turn * rise, minlength=TURN_BINS)
    scale = len(touching) / len(pairs)
    # each joint owns half the segment on either side; the joints between coplanar faces
    # (the triangulation's) own part of the straight runs too, shared out over the others
    owned = (width_a[keep] + width_b[keep]) / 2 * rise
    bent = turn >= MIN_TURN_RAD
    owned *= float(owned.sum()) / max(float(owned[bent].sum()), 1e-12)
    # a concave bend of radius r (its length ÷ its turn) belongs to a loop about 2π r long
    tight = right[keep] & bent & (owned <= SMALL_LOOP_RADIUS_MM * turn * rise)
    small = float(owned[tight].sum()) * scale
    signed = np.where(right[keep], -turn, turn)
    net = float((signed[bent] * rise[bent]).sum()) * scale if wound else None
    return Outline([(float(t / n), float(n * scale)) for t, n in zip(angle, length, strict=True)
                    if n > 0], small, net)


def _horizontal_normal(tri: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit horizontal direction of each face's normal, whether the face is a wall, and the
    mean length of the segment a layer cuts from it (side area ÷ z-extent).

    A face whose normal is within ~0.6° of vertical is level (its horizontal part is noise).
    """
    u = tri[:, 1] - tri[:, 0]
    v = tri[:, 2] - tri[:, 0]
    nx = u[:, 1] * v[:, 2] - u[:, 2] * v[:, 1]
    ny = u[:, 2] * v[:, 0] - u[:, 0] * v[:, 2]
    nz = u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]
    side = np.hypot(nx, ny)
    wall = side > 0.01 * np.abs(nz)
    safe = np.where(side > 0, side, 1)
    rise = _corner_max(tri, 2) - _corner_min(tri, 2)
    width = np.where(rise > 0, side / 2 / np.where(rise > 0, rise, 1), 0.0)
    return np.stack([nx / safe, ny / safe], axis=1), wall, width


def body_outlines(
    triangles: np.ndarray, faces: np.ndarray, face_body: np.ndarray, bodies: int,
    vertices: int, closed: bool,
) -> list[tuple[float, float, int, bool]]:
    """Per body: ``(height mm, outline mm per layer, holes through it, standing alone)``.

    What the time estimate needs about each body's loops: how many layers cross it, how long
    its outline is there (side area ÷ height), and how many holes go through it (its genus,
    from Euler's V − E + F = 2 − 2g with E = 3F/2 on a closed mesh; 0 when the mesh is
    open), and whether it stands clear of the others (``_alone``). Heights, extents and side
    areas from every k-th face above ``_TURN_SAMPLE`` (each standing
    for k); vertex and face counts are exact.
    """
    if bodies == 0 or len(triangles) == 0:
        return []
    stride = max(1, -(-len(triangles) // _TURN_SAMPLE))
    label = face_body[::stride]
    order = np.argsort(label, kind="stable")
    tri = triangles[::stride][order]  # the sample grouped by body (≤ 5 MB)
    label = label[order]
    del order
    starts = np.flatnonzero(np.r_[True, label[1:] != label[:-1]])
    present = label[starts]
    low = np.stack([np.minimum.reduceat(_corner_min(tri, i), starts) for i in range(3)], 1)
    high = np.stack([np.maximum.reduceat(_corner_max(tri, i), starts) for i in range(3)], 1)
    height = high[:, 2] - low[:, 2]
    alone = _alone(low, high)
    u = tri[:, 1] - tri[:, 0]
    v = tri[:, 2] - tri[:, 0]
    side = np.hypot(u[:, 1] * v[:, 2] - u[:, 2] * v[:, 1], u[:, 2] * v[:, 0] - u[:, 0] * v[:, 2])
    del u, v, tri
    side_area = np.add.reduceat(side.astype(np.float64), starts) / 2 * stride
    holes = np.zeros(bodies, dtype=np.int64)
    genus = max((2 * bodies - (vertices - len(faces) // 2)) // 2, 0) if closed else 0
    if genus and bodies == 1:
        holes[0] = genus
    elif genus:  # which bodies have them: count each body's vertices and faces
        vertex_body = np.zeros(vertices, dtype=np.int64)
        for corner in range(3):
            vertex_body[faces[:, corner]] = face_body
        v_count = np.bincount(vertex_body, minlength=bodies)
        f_count = np.bincount(face_body, minlength=bodies)
        holes = np.maximum((2 - (v_count - f_count // 2)) // 2, 0)
    return [(float(h), float(area) / float(h) if h > 0 else 0.0, int(holes[body]), bool(free))
            for h, area, body, free in zip(height, side_area, present, alone, strict=True)]


#: Above this many bodies their boxes are not compared pairwise (every one counts as joined).
_MAX_ALONE_BODIES = 2000


def _alone(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Whether each body's bounding box is clear of every other body's.

    A slicer merges bodies that overlap into one region per layer (a teapot's handle and
    spout join its pot), so only a body standing clear has loops of its own.
    """
    n = len(low)
    if n == 1:
        return np.ones(1, dtype=bool)
    if n > _MAX_ALONE_BODIES:
        return np.zeros(n, dtype=bool)
    overlap = ((low[:, None] <= high[None]) & (low[None] <= high[:, None])).all(axis=2)
    np.fill_diagonal(overlap, False)
    return ~overlap.any(axis=1)


def _corner_sum(tri: np.ndarray, axis: int) -> np.ndarray:
    return tri[:, 0, axis] + tri[:, 1, axis] + tri[:, 2, axis]


def _corner_max(tri: np.ndarray, axis: int) -> np.ndarray:
    return np.maximum(np.maximum(tri[:, 0, axis], tri[:, 1, axis]), tri[:, 2, axis])


def _corner_min(tri: np.ndarray, axis: int) -> np.ndarray:
    return np.minimum(np.minimum(tri[:, 0, axis], tri[:, 1, axis]), tri[:, 2, axis])
