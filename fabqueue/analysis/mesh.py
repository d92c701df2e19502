"""Analyse an uploaded mesh: can it be printed, on which printer, at what cost?

``analyse_mesh`` never raises for a bad file: refusals from the guards and parser failures
become ``ok: False`` with findings a resident understands; oddities that still print
(open mesh, inverted normals, several parts, wrong units, too large) become warnings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from fabqueue.analysis import topology
from fabqueue.analysis.guards import UploadLimits
from fabqueue.analysis.loaders import load_triangles
from fabqueue.analysis.mesh_checks import (
    base_extents,
    check_fit,
    check_surface,
    check_units,
    estimate,
    outline_segment_mm,
    right_way_out,
    significant,
    slope_areas,
    warn,
)
from fabqueue.analysis.outline import body_outlines, outline_turns
from fabqueue.analysis.overlap import outside_share, union_measures
from fabqueue.core.estimates import PrintParams
from fabqueue.core.findings import N_, Finding, Refused, finding
from fabqueue.core.specs import MaterialSpec, PrinterSpec


@dataclass
class MeshGeometry:
    """The merged mesh, for a thumbnail or a preview."""

    vertices: np.ndarray  # (m, 3) float32, mm
    faces: np.ndarray  # (n, 3) int32, degenerate faces removed


def analyse_mesh(
    path: Path,
    fmt: str,
    *,
    material: MaterialSpec | None,
    params: PrintParams,
    printers: Sequence[PrinterSpec],
    copies: int = 1,
    limits: UploadLimits = UploadLimits(),
    thumbnail: Path | None = None,
) -> dict[str, Any]:
    """Return a JSON-able report on the mesh; write a PNG to ``thumbnail`` when given."""
    report, geometry = analyse_mesh_geometry(
        path, fmt, material=material, params=params, printers=printers, copies=copies,
        limits=limits,
    )
    if thumbnail is not None and geometry is not None:
        missing = draw_thumbnail(geometry, thumbnail)
        if missing is not None:
            warn(report, missing)
    return report


def draw_thumbnail(geometry: MeshGeometry, out: Path) -> Finding | None:
    """Write the PNG preview; a warning instead when it can't be made (the analysis stands)."""
    from fabqueue.analysis.thumbnail import render_mesh_thumbnail

    try:
        render_mesh_thumbnail(geometry.vertices, geometry.faces, out)
    except Exception as error:  # a missing picture must not lose the analysis
        return finding("no_thumbnail", N_("No preview picture could be made ({reason})."),
                       reason=type(error).__name__)
    return None


def analyse_mesh_geometry(
    path: Path,
    fmt: str,
    *,
    material: MaterialSpec | None,
    params: PrintParams,
    printers: Sequence[PrinterSpec],
    copies: int = 1,
    limits: UploadLimits = UploadLimits(),
) -> tuple[dict[str, Any], MeshGeometry | None]:
    """``analyse_mesh`` plus the merged geometry (None when the file was unusable)."""
    report = _empty_report(fmt)
    try:
        triangles, declared_scale = load_triangles(path, fmt, limits)
        if declared_scale != 1.0:
            triangles *= np.float32(declared_scale)
        geometry = _check(triangles, report, material, params, printers, copies)
    except Refused as refused:
        report["errors"].append(refused.finding.to_dict())
        geometry = None
    except Exception as error:  # a parser or numpy surprise: never crash the upload
        report["errors"].append(
            finding(
                "unreadable_file",
                N_("The file could not be read ({reason}). Export it again from your design "
                   "program."),
                reason=type(error).__name__,
            ).to_dict()
        )
        geometry = None
    report["ok"] = not report["errors"]
    return report, geometry if report["ok"] else None


def _empty_report(fmt: str) -> dict[str, Any]:
    return {
        "ok": False, "format": fmt.lower().lstrip("."), "errors": [], "warnings": [],
        "triangles": 0, "bodies": 0, "watertight": False, "winding_consistent": False,
        "inverted_normals": False, "degenerate_faces": 0, "nan_coordinates": 0,
        "open_edges": 0, "nonmanifold_edges": 0,
        "bbox_mm": [0.0, 0.0, 0.0], "volume_cm3": 0.0, "surface_cm2": 0.0,
        "units_guess": "mm", "suggested_scale": 1.0,
        "material_g": 0.0, "filament_m": 0.0, "estimated_seconds": 0.0, "cost": None,
        "fits": [], "orientation": {},
    }


def _check(
    triangles: np.ndarray,
    report: dict[str, Any],
    material: MaterialSpec | None,
    params: PrintParams,
    printers: Sequence[PrinterSpec],
    copies: int,
) -> MeshGeometry:
    report["triangles"] = len(triangles)
    if len(triangles) == 0:
        raise Refused("empty_file", N_("The model contains no triangles."))
    bad = 0
    if not np.isfinite(triangles).all():  # the per-triangle count only for broken files
        bad = len(triangles) - int(np.count_nonzero(np.isfinite(triangles).all(axis=(1, 2))))
    report["nan_coordinates"] = bad
    if bad:
        raise Refused(
            "nan_coordinates",
            N_("{count} triangles have invalid coordinates (NaN or infinite): the exporter "
               "wrote a broken file. Export it again."),
            count=bad,
        )
    merged = topology.merge_vertices(triangles)
    degenerate = topology.degenerate_mask(merged.faces)
    report["degenerate_faces"] = int(np.count_nonzero(degenerate))
    if report["degenerate_faces"]:
        merged = topology.drop_faces(merged, degenerate)
        triangles = triangles[~degenerate]
    vertices, faces = merged.vertices, merged.faces
    low, high = topology.bounds(vertices)
    bbox = (high - low).tolist()
    report["bbox_mm"] = [round(v, 3) for v in bbox]
    if len(faces) == 0 or min(bbox) <= 1e-6 * max(max(bbox), 1e-9):
        raise Refused(
            "flat_mesh",
            N_("The model is flat (no thickness): there is nothing to print. Give it a "
               "thickness (extrude it) in your design program."),
        )
    edges, touching = topology.edge_facts(merged)
    del merged  # its corner sort (8 bytes a corner) is done with: free it before the rest
    outline = outline_turns(triangles, faces, touching,
                            edges.watertight and edges.winding_consistent)
    bodies, face_body = topology.body_labels(len(faces), touching)
    del touching
    measures = topology.measure(triangles, face_body, bodies)
    # what the time estimate travels to per layer: each body's loops, and their holes
    loops = body_outlines(triangles, faces, face_body, bodies, len(vertices), edges.watertight)
    report.update(
        bodies=bodies, watertight=edges.watertight,
        winding_consistent=edges.winding_consistent, open_edges=edges.open_edges,
        nonmanifold_edges=edges.nonmanifold_edges,
    )
    check_surface(report, edges, len(faces))
    volume, inverted = right_way_out(measures, triangles, faces, face_body, edges)
    if inverted:
        report["inverted_normals"] = True
        warn(report, finding(
            "inverted_normals",
            N_("{count} of the model's parts are inside out (their faces point inwards); "
               "FabQueue measured them the right way out, but check them in your slicer."),
            count=inverted,
        ))
    if volume <= 1e-9 * float(np.prod(bbox)):
        raise Refused(
            "zero_volume",
            N_("The model encloses no volume: there is no inside to fill. Check that it is a "
               "solid in your design program."),
        )
    report["volume_cm3"] = significant(volume / 1000)
    report["surface_cm2"] = significant(measures.surface_mm2 / 100)
    if bodies > 1:
        warn(report, finding(
            "multiple_bodies",
            N_("The model has {count} separate parts; they will be printed together."),
            count=bodies,
        ))
    check_units(report, bbox)
    check_fit(report, vertices, bbox, material, printers)
    # bodies pushed into one another print as their union: no buried walls, one inside
    share = outside_share(triangles, face_body, bodies)
    if share is not None:
        volume, surface, footprint, wall = union_measures(triangles, share)
        measures = replace(measures, surface_mm2=surface, footprint_mm2=footprint,
                           wall_mm2=wall)
    estimate(report, volume, measures, bbox, material, params, copies,
             slope_areas(triangles, share),
             base_extents(vertices, params.first_layer_height_mm), outline_segment_mm(triangles),
             outline, loops)
    return MeshGeometry(vertices, faces)
