"""One entry point for analysing an upload of any kind, used by the analysis task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fabqueue.core.findings import N_, finding

MESH_FORMATS = frozenset({"stl", "3mf", "obj"})


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
