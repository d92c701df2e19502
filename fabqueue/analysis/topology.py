"""The numpy core of mesh checking: vertex merge, edge pairing, bodies, volume, area.

Written for a million triangles in well under a second: float32 coordinates, int32 indices,
one sort per question (vertex identity, edge pairing), chunked float64 sums.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Odd 64-bit constants for mixing the three coordinate bit patterns into one sortable key.
_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9))
_CHUNK = 1 << 18


@dataclass(frozen=True)
class EdgeFacts:
    open_edges: int  # edges used by one face only: holes in the surface
    nonmanifold_edges: int  # edges shared by three or more faces
    flipped_edges: int  # edges whose two faces run the same way: inconsistent winding

    @property
    def watertight(self) -> bool:
        return self.open_edges == 0 and self.nonmanifold_edges == 0

    @property
    def winding_consistent(self) -> bool:
        return self.flipped_edges == 0


@dataclass(frozen=True)
class Measures:
    volume_mm3: float  # signed: negative when the faces point inwards
    surface_mm2: float
    footprint_mm2: float  # area projected on the bed, top and bottom averaged
    body_volumes_mm3: np.ndarray  # signed, per body


def merge_vertices(triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index identical corners: return (unique vertices (m, 3) float32, faces (n, 3) int32).

    Coordinates are first snapped to a power-of-two grid of 2^-24 of the largest magnitude
    (float32 precision there): CAD exporters write 1e-16 for 0 and the like, and those are the
    same point. The snapped integer triples are hashed to one uint64 and sorted once; the
    hash is verified against the triples, falling back to an exact (slower) unique only if
    two different points ever collide.
    """
    corners = triangles.reshape(-1, 3)
    grid = _snap_to_grid(corners)
    bits = grid.view(np.uint32)
    key = bits[:, 0].astype(np.uint64) * _MIX[0]
    key ^= bits[:, 1].astype(np.uint64)
    key *= _MIX[1]
    key ^= bits[:, 2].astype(np.uint64)
    key *= _MIX[2]
    key ^= key >> np.uint64(29)
    order = np.argsort(key)
    sorted_key = key[order]
    del key
    first = np.empty(len(sorted_key), dtype=bool)
    first[:1] = True
    np.not_equal(sorted_key[1:], sorted_key[:-1], out=first[1:])
    del sorted_key
    group = np.cumsum(first, dtype=np.int32) - 1
    representatives = order[first]
    if not np.array_equal(grid[order], grid[representatives][group]):
        return _merge_exact(corners, grid)
    index = np.empty(len(corners), dtype=np.int32)
    index[order] = group
    return corners[representatives], index.reshape(-1, 3)


def _snap_to_grid(corners: np.ndarray) -> np.ndarray:
    """Integer coordinates on a grid fine enough to keep every distinct float32 at that size."""
    largest = float(np.abs(corners).max()) if len(corners) else 0.0
    if largest == 0.0:
        return np.zeros(corners.shape, dtype=np.int32)
    _, exponent = math.frexp(largest)
    scale = np.float32(2.0 ** (24 - exponent))  # power of two: the multiply is exact
    return np.rint(corners * scale).astype(np.int32)


def _merge_exact(corners: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = np.ascontiguousarray(grid).view(np.dtype((np.void, 12))).ravel()
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    return corners[first], inverse.astype(np.int32).reshape(-1, 3)


def degenerate_mask(faces: np.ndarray) -> np.ndarray:
    """Faces with a repeated corner: no area, and no part in the surface's topology."""
    a, b, c = faces[:, 0], faces[:, 1], faces[:, 2]
    return (a == b) | (b == c) | (c == a)


def edge_facts(faces: np.ndarray, n_vertices: int) -> tuple[EdgeFacts, np.ndarray]:
    """Pair edges with one sort; return the facts and the (k, 2) pairs of faces sharing an edge.

    Each directed edge becomes ``((lo * V + hi) * 2 + direction) << face_bits | face``. A
    closed 2-manifold uses every undirected edge exactly twice, once each way, and the
    direction bit sorts before the face: so one sorted array answers watertightness, winding
    and which faces touch (for counting bodies). When the numbers are too large to pack in
    63 bits, an argsort of the unpacked keys does the same job, slower.
    """
    n_faces = len(faces)
    if n_faces == 0:
        return EdgeFacts(0, 0, 0), np.empty((0, 2), dtype=np.int64)
    start = faces.astype(np.int64)
    end = np.roll(start, -1, axis=1)
    lo = np.minimum(start, end)
    hi = np.maximum(start, end)
    key = (lo * n_vertices + hi) * 2 + (start > end)
    del lo, hi, end, start
    key = key.ravel()
    face_bits = max(int(n_faces - 1).bit_length(), 1)
    if (2 * n_vertices * n_vertices).bit_length() + face_bits <= 63:
        key <<= face_bits
        key |= np.repeat(np.arange(n_faces, dtype=np.int64), 3)
        key.sort()
        face = key & ((1 << face_bits) - 1)
        key >>= face_bits
    else:
        order = np.argsort(key)
        key = key[order]
        face = order // 3
    edge = key >> 1
    same = edge[1:] == edge[:-1]
    boundary = np.flatnonzero(~same) + 1
    starts = np.concatenate(([0], boundary))
    runs = np.diff(np.concatenate((starts, [len(edge)])))
    pairs = starts[runs == 2]
    flipped = int(np.count_nonzero((key[pairs] & 1) == (key[pairs + 1] & 1)))
    touching = np.flatnonzero(same)
    facts = EdgeFacts(
        open_edges=int(np.count_nonzero(runs == 1)),
        nonmanifold_edges=int(np.count_nonzero(runs > 2)),
        flipped_edges=flipped,
    )
    return facts, np.stack((face[touching], face[touching + 1]), axis=1)


def body_labels(n_faces: int, touching: np.ndarray) -> tuple[int, np.ndarray]:
    """Return (number of bodies, body of each face): faces sharing an edge are one body."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    graph = csr_matrix(
        (np.ones(len(touching), dtype=np.int8), (touching[:, 0], touching[:, 1])),
        shape=(n_faces, n_faces),
    )
    count, labels = connected_components(graph, directed=False)
    return int(count), labels.astype(np.int32)


def measure(triangles: np.ndarray, face_body: np.ndarray, bodies: int) -> Measures:
    """Signed volume (sum of tetrahedra to the centre), area and bed footprint, in float64.

    Coordinates are centred first: the volume of a closed mesh does not change, and the
    products stay small, so float64 sums of a million terms keep their precision.
    """
    flat = triangles.reshape(-1, 3)
    centre = (flat.min(axis=0).astype(np.float64) + flat.max(axis=0)) / 2
    tetra = np.empty(len(triangles), dtype=np.float64)
    surface = 0.0
    footprint = 0.0
    for lo in range(0, len(triangles), _CHUNK):
        part = triangles[lo : lo + _CHUNK].astype(np.float64) - centre
        v0, v1, v2 = part[:, 0], part[:, 1], part[:, 2]
        tetra[lo : lo + len(part)] = np.einsum("ij,ij->i", v0, np.cross(v1, v2)) / 6.0
        normal = np.cross(v1 - v0, v2 - v0)
        surface += float(np.sqrt(np.einsum("ij,ij->i", normal, normal)).sum()) / 2
        footprint += float(np.abs(normal[:, 2]).sum()) / 4  # /2 area, /2 top and bottom
    per_body = np.bincount(face_body, weights=tetra, minlength=bodies)
    return Measures(float(tetra.sum()), surface, footprint, per_body)
