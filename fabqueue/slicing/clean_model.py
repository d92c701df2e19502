"""The only model file PrusaSlicer ever reads: one FabQueue wrote from the parsed geometry.

An uploaded 3MF is a zip that PrusaSlicer reads far more of than its meshes: a whole config
(``Metadata/Slic3r_PE.config``: start G-code, ``z_offset``, ``post_process``), per-height
custom G-code, per-object settings and modifiers. Filtering members by name failed (a
backslash in a member name passed the filter and PrusaSlicer still read it), so nothing is
filtered: the upload is parsed into triangles and placements, and a new file is written that
can hold nothing else. STL and OBJ get the same treatment (a fresh binary STL), so no byte of
any upload reaches the slicer.

- STL, OBJ → binary STL, all triangles, in the file's own coordinates.
- 3MF → a 3MF with one ``<object>`` (a plain mesh) and one build ``<item>`` (its placement)
  per placed part, units converted to millimetres; copies and positions stay as drawn.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from fabqueue.core.findings import N_, Refused

MODEL_PATH = "3D/3dmodel.model"
CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="model" '
    'ContentType="application/vnd.ms-package.3dmanufacturing-3dmodel+xml"/></Types>\n'
)
RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    f'<Relationship Target="/{MODEL_PATH}" Id="rel0" '
    'Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/></Relationships>\n'
)
CORE_NS = "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"


def unreadable() -> Refused:
    return Refused("unreadable", N_("PrusaSlicer could not read the model file."))


def rewrite_model(model: Path, fmt: str, folder: Path,
                  volume: tuple[float, float, float] | None = None) -> Path:
    """Parse ``model`` (format ``fmt``: stl, obj, 3mf) and write a clean copy into ``folder``.

    With ``volume`` (the printer's build volume, mm) the copy is turned to fit it by the rule
    the analysis judged by (``core.placement``): lying down or turned on the bed as the job's
    analysis said, so that what was approved as fitting also slices.

    Raises ``Refused`` (code ``unreadable``) when the file holds no usable mesh.
    """
    import trimesh

    fmt = fmt.lower().lstrip(".")
    if fmt not in ("stl", "obj", "3mf"):
        raise unreadable()
    try:
        loaded = trimesh.load(str(model), file_type=fmt, process=False)
    except Exception as error:  # any parser failure: not a model we can rewrite
        raise unreadable() from error
    parts = placed_parts(loaded)
    if not parts:
        raise unreadable()
    scale = 1.0
    if fmt == "3mf":
        units = getattr(loaded, "units", None)
        if units:
            scale = float(trimesh.units.unit_conversion(units, "mm"))
    if volume is not None:
        parts = turned_to_fit(parts, volume, scale)
    if fmt == "3mf":
        out = folder / "clean.3mf"
        write_3mf(out, parts, scale)
    else:
        out = folder / "clean.stl"
        write_binary_stl(out, np.concatenate([
            apply(transform, vertices)[faces] for vertices, faces, transform in parts]))
    return out


def placed_parts(loaded: Any) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(vertices, faces, 4×4 placement) for each placed mesh; empty or non-finite ones dropped."""
    import trimesh

    if isinstance(loaded, trimesh.Trimesh):
        items = [(loaded, np.eye(4))]
    elif isinstance(loaded, trimesh.Scene):
        items = []
        for node in loaded.graph.nodes_geometry:
            transform, name = loaded.graph[node]
            geometry = loaded.geometry.get(name)
            if isinstance(geometry, trimesh.Trimesh):
                items.append((geometry, np.asarray(transform, dtype=np.float64)))
    else:
        return []
    parts = []
    for mesh, transform in items:
        vertices = np.asarray(mesh.vertices, dtype=np.float64)
        faces = np.asarray(mesh.faces, dtype=np.int64)
        if len(faces) == 0 or not np.isfinite(vertices).all() or not np.isfinite(transform).all():
            continue
        if faces.min() < 0 or faces.max() >= len(vertices):
            continue
        parts.append((vertices, faces, transform))
    return parts


def turned_to_fit(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                  volume: tuple[float, float, float],
                  scale: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The parts turned as one, by ``core.placement``, to fit ``volume`` (mm; the parts are in
    the file's units, ``scale`` to mm). Unchanged when they fit as drawn or fit no way at all
    (the slicer then says so)."""
    from fabqueue.core.placement import placement

    points = np.concatenate([apply(t, v) for v, _, t in parts]) * scale
    placed = placement(points, volume)
    if placed is None or placed.recipe == "as_is":
        return parts
    turn = np.eye(4)
    turn[:3, :3] = placed.rotation
    return [(v, f, turn @ t) for v, f, t in parts]


def apply(transform: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    return vertices @ transform[:3, :3].T + transform[:3, 3]


def write_binary_stl(path: Path, triangles: np.ndarray) -> None:
    record = np.dtype([("normal", "<f4", 3), ("points", "<f4", (3, 3)), ("attr", "<u2")])
    data = np.zeros(len(triangles), dtype=record)
    data["points"] = triangles.astype(np.float32)
    edges = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    length = np.linalg.norm(edges, axis=1, keepdims=True)
    data["normal"] = np.divide(edges, length, out=np.zeros_like(edges), where=length > 0)
    with path.open("wb") as handle:
        handle.write(b"FabQueue clean model".ljust(80, b" "))
        handle.write(np.uint32(len(data)).tobytes())
        handle.write(data.tobytes())


def write_3mf(path: Path, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
              scale: float) -> None:
    """Meshes and build items only; ``scale`` converts the file's units to millimetres."""
    objects, items = [], []
    for number, (vertices, faces, transform) in enumerate(parts, start=1):
        placed = transform.copy()
        placed[:3, 3] *= scale  # S·T·S⁻¹ for a uniform scale: only the offset scales
        verts = "".join(f'<vertex x="{x:.9g}" y="{y:.9g}" z="{z:.9g}"/>'
                        for x, y, z in (vertices * scale).tolist())
        tris = "".join(f'<triangle v1="{a}" v2="{b}" v3="{c}"/>' for a, b, c in faces.tolist())
        objects.append(f'<object id="{number}" type="model"><mesh><vertices>{verts}</vertices>'
                       f"<triangles>{tris}</triangles></mesh></object>")
        # 3MF's matrix is for row vectors: the transpose of the 3×4 part of trimesh's.
        matrix = " ".join(f"{v:.9g}" for v in placed[:3, :].T.flatten().tolist())
        items.append(f'<item objectid="{number}" transform="{matrix}"/>')
    document = (f'<?xml version="1.0" encoding="UTF-8"?>\n<model unit="millimeter" '
                f'xml:lang="en-US" xmlns="{CORE_NS}"><resources>{"".join(objects)}</resources>'
                f'<build>{"".join(items)}</build></model>\n')
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("_rels/.rels", RELS)
        archive.writestr(MODEL_PATH, document)
