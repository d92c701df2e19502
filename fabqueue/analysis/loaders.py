"""Turn an upload into triangles: guards first, then the fastest reader for the format.

STL (binary and text) is read with numpy directly; 3MF and OBJ go through trimesh with
``process=False`` (no merging or repair: the numpy core measures what was drawn).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from fabqueue.analysis import guards
from fabqueue.analysis.guards import UploadLimits
from fabqueue.analysis.stl import read_ascii_stl, read_binary_stl
from fabqueue.core.findings import N_, Refused

FORMATS = ("stl", "3mf", "obj")

_TRIANGLE_TAG = re.compile(rb"<(?:\w+:)?triangle\b")
_OBJ_FACE = re.compile(rb"(?m)^[ \t]*f[ \t]")


def normalise_format(fmt: str) -> str:
    name = fmt.lower().lstrip(".")
    if name not in FORMATS:
        raise Refused(
            "unsupported_format",
            N_("FabQueue reads STL, 3MF and OBJ models, not {format} files."),
            format=fmt,
        )
    return name


def load_triangles(path: Path, fmt: str, limits: UploadLimits) -> tuple[np.ndarray, float]:
    """Return ((n, 3, 3) float32 triangles, scale to mm the file itself declares).

    Raises ``Refused`` for anything the guards reject or a parser cannot read.
    """
    fmt = normalise_format(fmt)
    if fmt == "stl":
        count = guards.check_stl(path, max_triangles=limits.max_triangles,
                                 max_bytes=limits.max_bytes)
        with path.open("rb") as f:
            head = f.read(4096)
        if guards.stl_is_binary(head, path.stat().st_size):
            return read_binary_stl(path, count), 1.0
        return read_ascii_stl(path, count), 1.0
    guards.check_size(path, max_bytes=limits.max_bytes)
    if fmt == "3mf":
        _check_3mf(path, limits)
        return _load_3mf(path)
    _check_obj(path, limits)
    return _with_trimesh(path, "obj"), 1.0


def _refuse_count(count: int, limits: UploadLimits) -> None:
    if count > limits.max_triangles:
        raise Refused(
            "too_many_triangles",
            N_("The model has {count} triangles; the limit is {limit}. Simplify it "
               "(decimate) in your CAD program and export again."),
            count=count,
            limit=limits.max_triangles,
        )


def _check_3mf(path: Path, limits: UploadLimits) -> None:
    """Zip directory, then the model parts trimesh will parse (and only those): XML entities
    refused, triangles counted as many times as the loader reads them."""
    members = guards.safe_zip_members(path, limits.zip)
    with zipfile.ZipFile(path) as archive:
        def read(info: zipfile.ZipInfo) -> bytes:
            if info.file_size > limits.max_xml_bytes:
                raise Refused(
                    "archive_too_large",
                    N_("A model inside the 3MF is {size_mb} MB of XML; the limit is "
                       "{limit_mb} MB."),
                    size_mb=round(info.file_size / guards.MB, 1),
                    limit_mb=round(limits.max_xml_bytes / guards.MB, 1),
                )
            data = archive.read(info)
            guards.check_xml_bytes(data)
            return data

        root, parts = guards.trimesh_3mf_members(members)
        if root is None:
            raise Refused("not_a_mesh", N_("This 3MF file contains no 3D model."))
        root_xml = read(root)
        count = len(_TRIANGLE_TAG.findall(root_xml))
        counted: dict[str, int] = {}
        for ref in guards.component_paths(root_xml):
            info = parts.get(ref)
            if info is None:  # the loader skips a path the archive does not hold
                continue
            if ref not in counted:
                counted[ref] = len(_TRIANGLE_TAG.findall(read(info)))
            count += counted[ref]  # parsed again for every reference
            _refuse_count(count, limits)
    _refuse_count(count, limits)


def _check_obj(path: Path, limits: UploadLimits) -> None:
    with path.open("rb") as f:
        head = f.read(4096)
    foreign = guards.sniff_foreign(head)
    if foreign:
        raise Refused("not_a_mesh", N_("This file is a {kind}, not an OBJ model."), kind=foreign)
    # each "f" line is at least one triangle: a cheap lower bound, counted before parsing
    _refuse_count(len(_OBJ_FACE.findall(path.read_bytes())), limits)


def _load_3mf(path: Path) -> tuple[np.ndarray, float]:
    import trimesh

    loaded = _trimesh_load(path, "3mf")
    mesh = loaded.to_mesh() if isinstance(loaded, trimesh.Scene) else loaded
    scale = 1.0
    units = getattr(loaded, "units", None)
    if units:
        scale = float(trimesh.units.unit_conversion(units, "mm"))
    return _triangles_of(mesh), scale


def _with_trimesh(path: Path, file_type: str) -> np.ndarray:
    import trimesh

    loaded = _trimesh_load(path, file_type)
    mesh = loaded.to_mesh() if isinstance(loaded, trimesh.Scene) else loaded
    return _triangles_of(mesh)


def _trimesh_load(path: Path, file_type: str) -> Any:  # trimesh.Scene | trimesh.Trimesh
    import trimesh

    try:
        loaded = trimesh.load(str(path), file_type=file_type, process=False)
    except Refused:
        raise
    except Exception as error:  # any parser failure: the file is damaged or not this format
        raise Refused(
            "unreadable_file",
            N_("The {format} file could not be read: it is damaged or not really a {format} "
               "file. Export it again from your design program."),
            format=file_type.upper(),
        ) from error
    if not isinstance(loaded, trimesh.Trimesh | trimesh.Scene):
        raise Refused(
            "not_a_mesh", N_("The {format} file holds no 3D mesh."), format=file_type.upper()
        )
    return loaded


def _triangles_of(mesh: object) -> np.ndarray:
    vertices = np.asarray(getattr(mesh, "vertices", np.empty((0, 3))), dtype=np.float32)
    faces = np.asarray(getattr(mesh, "faces", np.empty((0, 3))), dtype=np.int64)
    if len(faces) == 0:
        return np.empty((0, 3, 3), dtype=np.float32)
    return np.ascontiguousarray(vertices[faces])
