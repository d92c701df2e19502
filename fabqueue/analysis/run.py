"""One entry point for analysing an upload of any kind, used by the analysis task."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fabqueue.core.findings import N_, finding

MESH_FORMATS = frozenset({"stl", "3mf", "obj"})

#: From this many faces the preview is drawn after the verdict is out: on a 1M-triangle
#: model it costs nearly as much as the analysis itself (bench/RESULTS.md, "Upload to
#: verdict"), while a small model's picture takes milliseconds and comes with the verdict.
PICTURE_LATER_FACES = 100_000

#: Draws the preview into the path analyse_upload was given; returns a warning dict (or None)
Picture = Callable[[], dict[str, Any] | None]


def analyse_verdict_first(path: Path, fmt: str, *, thumbnail: Path,
                          **inputs: Any) -> tuple[dict[str, Any], Picture | None]:
    """``analyse_upload``, except that a large mesh's thumbnail is left to the returned step,
    so the caller can publish the verdict before drawing it (None: nothing left to draw)."""
    if fmt not in MESH_FORMATS:
        return analyse_upload(path, fmt, thumbnail=thumbnail, **inputs), None
    from fabqueue.analysis.mesh import analyse_mesh_geometry, draw_thumbnail
    from fabqueue.analysis.mesh_checks import warn

    report, geometry = analyse_mesh_geometry(path, fmt, **inputs)
    if geometry is None:
        return report, None
    if len(geometry.faces) < PICTURE_LATER_FACES:
        missing = draw_thumbnail(geometry, thumbnail)
        if missing is not None:
            warn(report, missing)
        return report, None

    def picture() -> dict[str, Any] | None:
        missing = draw_thumbnail(geometry, thumbnail)
        return None if missing is None else missing.to_dict()

    return report, picture


def analyse_upload(path: Path, fmt: str, *, thumbnail: Path, **inputs: Any) -> dict[str, Any]:
    """Analyse ``path`` (format ``fmt``); write a PNG thumbnail when the file allows it.

    ``inputs`` are the plain specs from ``store.queries.analysis_inputs``."""
    if fmt in MESH_FORMATS:
        from fabqueue.analysis.mesh import analyse_mesh

        return analyse_mesh(path, fmt, thumbnail=thumbnail, **inputs)
    if fmt == "svg":
        from fabqueue.analysis.drawing import analyse_for_job

        limits = inputs.pop("limits", None)
        if limits is not None:
            inputs["max_bytes"] = limits.max_bytes
        return analyse_for_job(path, thumbnail=thumbnail, **inputs)
    if fmt == "gcode":
        from fabqueue.analysis.gcode import analyse_gcode

        return analyse_gcode(path, **inputs)
    f = finding("unknown_format", N_("This kind of file can't be used. Upload STL, 3MF or OBJ "
                                     "for printing, or SVG for laser cutting."))
    return {"ok": False, "errors": [f.to_dict()], "warnings": []}
