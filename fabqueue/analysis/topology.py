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
#: Corners hashed or regrouped at a time in the merge (~30 bytes of temporaries each).
_MERGE_CHUNK = 1 << 16
#: Faces measured at a time inside one of measure's _CHUNK sums.
_SLICE = 1 << 15
#: Corners per chunk of edge pairing (whole vertices): a few MB of temporaries at a time.
_EDGE_CHUNK = 1 << 15
_MAX_HOOK_ROUNDS = 64
_ROW = np.dtype([("xy", "<u8"), ("z", "<u4")])
#: From a corner (3 * face + slot) to the next and previous corner of its face.
_NEXT_STEP = np.array([1, 1, -2], dtype=np.int32)
_PREV_STEP = np.array([2, -1, -1], dtype=np.int32)


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
    wall_mm2: float  # area seen from the side: each face's area times its normal's sideways part
    body_volumes_mm3: np.ndarray  # signed, per body


@dataclass(frozen=True)
class Merged:
    """A triangle list turned indexed, plus the corner sort that did it (reused for edges)."""

    vertices: np.ndarray  # (m, 3) float32
    faces: np.ndarray  # (n, 3) int32
    corner_order: np.ndarray  # (3n,) int32: corners (3 * face + slot) grouped by vertex

    @property
    def corner_vertex(self) -> np.ndarray:
        """(3n,) int32: the vertex of each corner in ``corner_order``, ascending. Made when
        asked, not kept: ``edge_facts`` reads it chunk by chunk (12 MB per 1M triangles)."""
        return self.faces.ravel()[self.corner_order]


def merge_vertices(triangles: np.ndarray) -> Merged:
    """Index identical corners, keeping the sort for ``edge_facts``.

    Coordinates are first snapped to a power-of-two grid of 2^-24 of the largest magnitude
    (float32 precision there): CAD exporters write 1e-16 for 0 and the like, and those are the
    same point. Each snapped triple is hashed to 64 bits; the top bits and the corner's index
    are packed into one int64 and sorted once (a plain sort, cheaper than an argsort plus
    gathers). Corners are then grouped by their full 64-bit hash: two different points share
    one with odds of about m²/2^65 (1e-8 for a million vertices).

    Memory: the hashes are made in chunks, their top bits straight into the sort keys and
    the rest (the bits the corner's index takes in the key) into a uint32 per corner, which
    the sorted pass gathers back: never 8 bytes per corner beside the keys. Indices are int32.
    """
    corners = triangles.reshape(-1, 3)
    n = len(corners)
    scale = _grid_scale(corners)
    index_bits = max(int(n - 1).bit_length(), 1)
    key = np.empty(n, dtype=np.int64)
    rest = np.empty(n, dtype=np.uint32 if index_bits < 32 else np.uint64)
    for lo, hi in _chunks(n, _MERGE_CHUNK):
        _sort_keys(key[lo:hi], rest[lo:hi], corners[lo:hi], scale, index_bits, lo)
    key.sort()
    order, first = _group_sorted(key, rest, index_bits)
    del rest
    if order is not None:
        order = order.copy()  # out of the keys' buffer, which it shares: then free that
    del key
    if order is None:
        # two points share the sorted top bits but not the full hash, so their corners may
        # interleave: order by the full hash instead (rare: ~m²/2^(64-index bits))
        full = np.concatenate([_corner_hashes(corners[lo:hi], scale) for lo, hi in _chunks(n)])
        order = np.argsort(full, kind="stable").astype(_index_dtype(n))
        hashes = full[order]
        del full
        first[0] = True
        np.not_equal(hashes[1:], hashes[:-1], out=first[1:])
        del hashes
    index = np.empty(n, dtype=np.int32)
    index[order] = _vertex_numbers(first)
    vertices = np.take(corners, order[first], axis=0)
    return Merged(vertices, index.reshape(-1, 3), order)


def _sort_keys(
    key: np.ndarray, rest: np.ndarray, corners: np.ndarray, scale: np.float32 | None,
    index_bits: int, first: int,
) -> None:
    """Each corner's hash: its top bits, then the corner's index (from ``first``), in ``key``;
    the low ``index_bits + 1`` bits the key has no room for in ``rest``."""
    hashes = _corner_hashes(corners, scale)
    shift = np.uint64(index_bits + 1)
    np.bitwise_and(hashes, np.uint64((1 << (index_bits + 1)) - 1), out=rest, casting="unsafe")
    hashes >>= shift
    key[:] = hashes.view(np.int64)
    key <<= index_bits
    key |= np.arange(first, first + len(key), dtype=np.int64)


def _group_sorted(
    key: np.ndarray, rest: np.ndarray, index_bits: int
) -> tuple[np.ndarray | None, np.ndarray]:
    """From the sorted keys: (corner order, a view of the keys' buffer; whether each sorted
    corner starts a new point).

    A corner starts a new point where its hash's top bits (in the key) differ from the
    previous corner's. The order is None when two different hashes share their top bits:
    their corners may interleave, so runs of equal top bits would not be whole points.
    """
    n = len(key)
    # The order is written over the keys already read: corner i's int32 lands in the bytes
    # of key i // 2, so each chunk only overwrites keys of chunks before it or itself (read
    # in full first). One 12 MB array less per million triangles at the merge's peak.
    order = key.view(np.int32)[:n] if _index_dtype(n) is np.int32 else key
    first = np.empty(n, dtype=bool)
    mask = (1 << index_bits) - 1
    last_top = last_rest = None
    for lo, hi in _chunks(n, _MERGE_CHUNK):
        part = key[lo:hi]
        corner = part & mask
        top = part >> index_bits
        del part
        order[lo:hi] = corner
        low = rest[corner]
        del corner
        starts = first[lo:hi]
        np.not_equal(top[1:], top[:-1], out=starts[1:])
        starts[0] = last_top is None or top[0] != last_top
        # equal top bits must mean equal hashes
        if np.any(~starts[1:] & (low[1:] != low[:-1])) or (
            not starts[0] and low[0] != last_rest
        ):
            return None, first
        last_top, last_rest = top[-1], low[-1]
    return order, first


def _vertex_numbers(first: np.ndarray) -> np.ndarray:
    """``cumsum(first) - 1`` as int32, in chunks: numpy's cumsum of a bool array to int32
    casts the whole input to a temporary first (12 MB per million triangles)."""
    group = np.empty(len(first), dtype=np.int32)
    carry = -1
    for lo, hi in _chunks(len(first)):
        part = group[lo:hi]
        np.cumsum(first[lo:hi], dtype=np.int32, out=part)
        part += carry
        carry = int(part[-1])
    return group


def _index_dtype(n: int) -> type[np.signedinteger]:
    """int32 for corner numbers whenever they fit: half the memory of int64."""
    return np.int32 if n < 2**31 else np.int64


def _chunks(n: int, size: int = _CHUNK) -> list[tuple[int, int]]:
    return [(lo, min(lo + size, n)) for lo in range(0, n, size)]


def _corner_hashes(corners: np.ndarray, scale: np.float32 | None) -> np.ndarray:
    return _hash(_snap_to_grid(corners, scale))


def drop_faces(merged: Merged, drop: np.ndarray) -> Merged:
    """The same mesh without the faces marked in ``drop``, faces renumbered."""
    keep = ~drop
    dtype = merged.corner_order.dtype
    new_face = np.cumsum(keep, dtype=dtype) - 1
    corner_face = merged.corner_order // 3
    kept = keep[corner_face]
    order = merged.corner_order[kept]
    renumbered = new_face[order // 3] * 3 + order % 3
    return Merged(merged.vertices, merged.faces[keep], renumbered)


def _hash(grid: np.ndarray) -> np.ndarray:
    """Mix three int32 columns into one uint64 (multiply-xor; the top bits are well mixed).

    Each 12-byte row is read as x and y together (one uint64) plus z: no column copies.
    """
    rows = np.ascontiguousarray(grid).view(_ROW).ravel()
    key = rows["xy"] * _MIX[0]
    key ^= rows["z"]
    key *= _MIX[1]
    key ^= key >> np.uint64(29)
    key *= _MIX[2]
    key ^= key >> np.uint64(32)
    return key


def _grid_scale(corners: np.ndarray) -> np.float32 | None:
    """The power of two that puts the largest magnitude at 2^24 (None: every point is 0)."""
    largest = float(max(corners.max(), -corners.min())) if len(corners) else 0.0
    if largest == 0.0:
        return None
    _, exponent = math.frexp(largest)
    return np.float32(2.0 ** (24 - exponent))  # power of two: the multiply is exact


def _snap_to_grid(corners: np.ndarray, scale: np.float32 | None) -> np.ndarray:
    """Coordinates snapped to a grid fine enough to keep every distinct float32 at that size.

    Returned as the bit patterns (int32 view) of whole float32 numbers: equal points, equal
    bits, without converting to integers.
    """
    if scale is None:
        return np.zeros(corners.shape, dtype=np.int32)
    scaled = corners * scale
    np.rint(scaled, out=scaled)
    scaled += np.float32(0.0)  # -0.0 becomes +0.0: one point, one bit pattern
    return scaled.view(np.int32)


def bounds(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(min, max) per axis of (n, 3) points, float64.

    Column by column: numpy reduces ``axis=0`` of an (n, 3) array some 50× slower.
    """
    low = np.array([points[:, i].min() for i in range(3)], dtype=np.float64)
    high = np.array([points[:, i].max() for i in range(3)], dtype=np.float64)
    return low, high


def degenerate_mask(faces: np.ndarray) -> np.ndarray:
    """Faces with a repeated corner: no area, and no part in the surface's topology."""
    a, b, c = faces[:, 0], faces[:, 1], faces[:, 2]
    return (a == b) | (b == c) | (c == a)


def edge_facts(merged: Merged) -> tuple[EdgeFacts, np.ndarray]:
    """Pair edges by sorting; return the facts and the (k, 2) int32 pairs of faces sharing an
    edge.

    Every directed edge a→b becomes ``((lo * V + hi) * 2 + direction) << face_bits | face``.
    A closed 2-manifold uses every undirected edge exactly twice, once each way, and the
    direction bit sorts before the face: so one sorted array answers watertightness, winding
    and which faces touch (for counting bodies).

    The keys are emitted walking the corners in vertex order (the merge's sort): at each
    corner of vertex v, the edge to the next corner if it is higher, and the edge from the
    previous corner if it is higher. So every key of an edge comes from the corners of its
    lower vertex, and the work goes in chunks of whole vertices: each chunk's keys are sorted
    and counted alone (a stable, run-detecting sort of already grouped keys), with a few MB
    of temporaries instead of 16 bytes per corner at once.
    """
    faces, n_vertices = merged.faces, len(merged.vertices)
    n_faces = len(faces)
    if n_faces == 0:
        return EdgeFacts(0, 0, 0), np.empty((0, 2), dtype=np.int32)
    face_bits = max(int(n_faces - 1).bit_length(), 1)
    packs = _packs(n_vertices, face_bits)
    flat = faces.ravel()
    order = merged.corner_order
    pairs = _Pairs(3 * n_faces // 2)  # exactly this many on a closed 2-manifold
    open_edges = nonmanifold = flipped = 0
    lo = 0
    while lo < len(order):
        hi = _whole_vertices_end(flat, order, min(lo + _EDGE_CHUNK, len(order)))
        corner = order[lo:hi]
        key, edge_face = _half_edges(flat, corner, flat[corner], n_vertices, face_bits, packs)
        del corner
        lo = hi
        if len(key) == 0:
            continue
        edge = key >> 1
        same = edge[1:] == edge[:-1]
        del edge
        starts = np.flatnonzero(~same)
        starts += 1
        starts = np.concatenate(([0], starts, [len(key)]))
        runs = np.diff(starts)
        two = starts[:-1][runs == 2]
        flipped += int(np.count_nonzero((key[two] & 1) == (key[two + 1] & 1)))
        open_edges += int(np.count_nonzero(runs == 1))
        nonmanifold += int(np.count_nonzero(runs > 2))
        del key, starts, runs, two
        touching = np.flatnonzero(same)
        pairs.add(edge_face[touching], edge_face[touching + 1])
    return EdgeFacts(open_edges, nonmanifold, flipped), pairs.result()


def _whole_vertices_end(flat: np.ndarray, order: np.ndarray, hi: int) -> int:
    """``hi``, moved on past the rest of the corners of the vertex at ``hi - 1``: a chunk
    ends on a whole vertex, so every edge is emitted in one chunk (from its lower vertex)."""
    if hi >= len(order):
        return len(order)
    last = flat[order[hi - 1]]
    step = 64  # more than most vertices' corners
    while True:
        ahead = flat[order[hi : hi + step]]
        other = np.flatnonzero(ahead != last)
        if len(other):
            return hi + int(other[0])
        hi += len(ahead)
        if hi >= len(order):
            return len(order)
        step *= 2


def _half_edges(
    flat: np.ndarray, corner: np.ndarray, v: np.ndarray, n_vertices: int, face_bits: int,
    packs: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """The sorted edge keys emitted at these corners (whole vertices), and each key's face."""
    # int32 index arithmetic on purpose: fewer and smaller temporaries (this is memory-bound)
    corner = corner.astype(np.int32, copy=False)
    slot = corner % 3
    nxt = np.take(flat, corner + _NEXT_STEP[slot])
    prv = np.take(flat, corner + _PREV_STEP[slot])
    del slot
    emit = np.empty((len(v), 2), dtype=bool)
    np.greater(nxt, v, out=emit[:, 0])
    np.greater(prv, v, out=emit[:, 1])
    emit = emit.ravel()
    keys = np.empty((len(v), 2), dtype=np.int64)
    np.multiply(v, n_vertices, out=keys[:, 0], dtype=np.int64)
    keys[:, 1] = keys[:, 0]
    keys[:, 0] += nxt
    keys[:, 1] += prv
    keys <<= 1
    keys[:, 1] += 1  # the direction bit: this edge runs from hi to lo
    del nxt, prv
    key = keys.ravel()[emit]
    del keys
    face = np.repeat(corner // 3, 2)[emit]
    if packs:
        key <<= face_bits
        key |= face
        del face
        key.sort(kind="stable")
        edge_face = (key & ((1 << face_bits) - 1)).astype(np.int32)
        key >>= face_bits
        return key, edge_face
    # too many vertices to pack the face too: sort the keys, carrying the faces
    by_key = np.argsort(key, kind="stable")
    return key[by_key], face[by_key]


class _Pairs:
    """A growing (k, 2) int32 array of face pairs, filled chunk by chunk without copies."""

    def __init__(self, expected: int) -> None:
        self._data = np.empty((max(expected, 1), 2), dtype=np.int32)
        self._used = 0

    def add(self, a: np.ndarray, b: np.ndarray) -> None:
        end = self._used + len(a)
        if end > len(self._data):  # more shared edges than a closed surface has: grow
            grown = np.empty((max(end, 2 * len(self._data)), 2), dtype=np.int32)
            grown[: self._used] = self._data[: self._used]
            self._data = grown
        self._data[self._used : end, 0] = a
        self._data[self._used : end, 1] = b
        self._used = end

    def result(self) -> np.ndarray:
        return self._data[: self._used]


def _packs(n_vertices: int, face_bits: int) -> bool:
    """Whether an edge key and a face index fit together in 63 bits."""
    return (2 * n_vertices * n_vertices).bit_length() + face_bits <= 63


def body_labels(n_faces: int, touching: np.ndarray) -> tuple[int, np.ndarray]:
    """Return (number of bodies, body of each face): faces sharing an edge are one body.

    Union by hooking in numpy: every pair's larger root adopts the smaller one, then paths are
    shortened to their roots; pairs already inside one tree drop out. A mesh settles in a few
    rounds (4 for a million triangles), without the 0.17 s import of scipy's graph module,
    which remains the fallback for a graph that will not settle.

    The pairs go in chunks, their roots read from the parents as the round began (so only
    roots are hooked, as if all at once): a few MB of temporaries instead of five arrays the
    size of the pairs.
    """
    parent = np.arange(n_faces, dtype=np.int32)
    # the columns as they are (views, when edge_facts gave int32): no copies of the pairs
    a = touching[:, 0].astype(np.int32, copy=False)
    b = touching[:, 1].astype(np.int32, copy=False)
    live = [(a[lo:hi], b[lo:hi]) for lo, hi in _chunks(len(a))]
    del a, b
    for _ in range(_MAX_HOOK_ROUNDS):
        before = parent.copy()
        live = [hooked for pair in live if (hooked := _hook(parent, before, *pair))]
        del before
        if not live:
            return _compact(parent)
        for _ in range(_MAX_HOOK_ROUNDS):
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
        del grand
    return _scipy_body_labels(n_faces, touching)


def _hook(
    parent: np.ndarray, before: np.ndarray, a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """Hook the roots of pairs (a, b) that are apart; return those pairs (None: all joined).

    Pairs still apart are kept as int32 copies only once most have joined: until then the
    chunk's views (or earlier copies) stay, and the joined pairs are simply read again."""
    root_a, root_b = before[a], before[b]
    apart = root_a != root_b
    count = int(np.count_nonzero(apart))
    if count == 0:
        return None
    if count < len(a):
        root_a, root_b = root_a[apart], root_b[apart]
        if count <= len(a) // 4:
            a, b = a[apart], b[apart]
    del apart
    larger = np.maximum(root_a, root_b)
    np.minimum(root_a, root_b, out=root_a)
    np.minimum.at(parent, larger, root_a)
    return a, b


def _compact(parent: np.ndarray) -> tuple[int, np.ndarray]:
    """Number the roots 0, 1, … and give every face its root's number."""
    is_root = parent == np.arange(len(parent), dtype=parent.dtype)
    rank = np.cumsum(is_root, dtype=np.int32) - 1
    return int(np.count_nonzero(is_root)), rank[parent]


def _scipy_body_labels(n_faces: int, touching: np.ndarray) -> tuple[int, np.ndarray]:
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    graph = csr_matrix(
        (np.ones(len(touching), dtype=np.int8), (touching[:, 0], touching[:, 1])),
        shape=(n_faces, n_faces),
    )
    count, labels = connected_components(graph, directed=False)
    return int(count), labels.astype(np.int32)


def measure(triangles: np.ndarray, face_body: np.ndarray, bodies: int) -> Measures:
    """Signed volume, area and bed footprint: float32 per face, float64 sums.

    Coordinates are centred first (a closed mesh's volume does not change and the products
    stay small). Volume by the divergence theorem: each face adds its mean height times its
    projected area, which needs only the z part of the cross product.
    """
    low, high = bounds(triangles.reshape(-1, 3))
    centre = ((low + high) / 2).astype(np.float32)
    prism = np.empty(len(triangles), dtype=np.float64)
    surface = 0.0
    footprint = 0.0
    wall = 0.0
    # Sums go per chunk of _CHUNK faces, as they always have (the float64 totals depend on
    # it); the per-face float32 work inside a chunk goes in slices into three buffers, so the
    # temporaries are a few MB whatever the chunk.
    wall_part = np.empty(min(len(triangles), _CHUNK), dtype=np.float32)
    surface_part = np.empty_like(wall_part)
    level_part = np.empty_like(wall_part)
    for lo in range(0, len(triangles), _CHUNK):
        rows = triangles[lo : lo + _CHUNK]
        for start in range(0, len(rows), _SLICE):
            end = min(start + _SLICE, len(rows))
            _face_measures(rows[start:end], centre, prism[lo + start : lo + end],
                           wall_part[start:end], surface_part[start:end],
                           level_part[start:end])
        wall += float(wall_part[: len(rows)].sum(dtype=np.float64))
        surface += float(surface_part[: len(rows)].sum(dtype=np.float64))
        footprint += float(level_part[: len(rows)].sum(dtype=np.float64))
    prism /= 2
    per_body = np.bincount(face_body, weights=prism, minlength=bodies)
    # area is half the cross product; the footprint is the mean of top and bottom
    return Measures(float(prism.sum()), surface / 2, footprint / 4, wall / 2, per_body)


def _face_measures(
    rows: np.ndarray, centre: np.ndarray, prism: np.ndarray, wall: np.ndarray,
    surface: np.ndarray, level: np.ndarray,
) -> None:
    """Per face, float32: its prism (mean height × projected area, doubled), the length of
    its cross product's sideways part, of the whole cross product, and of its z part."""
    ax, ay, az, bx, by, bz, mean_z = _edge_vectors(rows, centre)
    nx = ay * bz - az * by  # the cross product: twice the area, outward
    ny = az * bx - ax * bz
    nz = ax * by - ay * bx
    del ax, ay, az, bx, by, bz
    prism[:] = mean_z * nz
    del mean_z
    sideways = nx * nx + ny * ny
    del nx, ny
    np.sqrt(sideways, out=wall)
    sideways += nz * nz
    np.sqrt(sideways, out=surface)
    np.abs(nz, out=level)


def _edge_vectors(rows: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, ...]:
    """Two edge vectors of each face (corner 1 − corner 0, corner 2 − corner 0) and its
    mean height, all from coordinates centred on ``centre``, float32."""
    first = [rows[:, 0, i] - centre[i] for i in range(3)]
    edges = []
    for corner in (1, 2):
        for i in range(3):
            edge = rows[:, corner, i] - centre[i]
            edge -= first[i]
            edges.append(edge)
    mean_z = first[2] + (rows[:, 1, 2] - centre[2])
    mean_z += rows[:, 2, 2] - centre[2]
    mean_z /= 3
    return (*edges, mean_z)
