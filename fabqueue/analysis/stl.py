"""Fast binary STL reading: one numpy read of the records, no per-triangle Python."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fabqueue.analysis.guards import STL_HEADER_BYTES

_RECORD = np.dtype([("normal", "<f4", (3,)), ("corners", "<f4", (3, 3)), ("attr", "<u2")])


def read_binary_stl(path: Path, count: int) -> np.ndarray:
    """Return the ``count`` triangles of a binary STL as a contiguous (n, 3, 3) float32 array.

    ``count`` comes from ``guards.check_stl``, which has already matched it to the file size.
    The stored normals are ignored: slicers recompute them from the winding, and so do we.
    """
    records = np.fromfile(path, dtype=_RECORD, count=count, offset=STL_HEADER_BYTES)
    return np.ascontiguousarray(records["corners"])
