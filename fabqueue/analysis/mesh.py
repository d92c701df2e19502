"""Analyse an uploaded mesh: can it be printed, on which printer, at what cost?

``analyse_mesh`` never raises for a bad file: refusals from the guards and parser failures
become ``ok: False`` with findings a resident understands; oddities that still print
(open mesh, inverted normals, several parts, wrong units, too large) become warnings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fabqueue.analysis import topology
from fabqueue.analysis.footprint import footprints_for_fit
from fabqueue.analysis.guards import UploadLimits
from fabqueue.analysis.loaders import load_triangles
from fabqueue.core.estimates import PrintParams, estimate_print
from fabqueue.core.findings import N_, Finding, Refused, finding
from fabqueue.core.fit import fit_orientation
from fabqueue.core.specs import MaterialSpec, PrinterSpec
from fabqueue.core.units import guess_units

#: PLA, when the upload names no material: estimates still show grams and metres.
DEFAULT_DENSITY_G_CM3 = 1.24
#: Below this share of paired edges the triangles do not form a surface at all.
_SOUP_PAIRED_SHARE = 0.5


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
        from fabqueue.analysis.thumbnail import render_mesh_thumbnail

        try:
            render_mesh_thumbnail(geometry.vertices, geometry.faces, thumbnail)
        except Exception as error:  # a missing picture must not lose the analysis
            _warn(report, finding(
                "no_thumbnail", N_("No preview picture could be made ({reason})."),
                reason=type(error).__name__,
            ))
    return report


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


def _warn(report: dict[str, Any], item: Finding) -> None:
    report["warnings"].append(item.to_dict())


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
    bodies, face_body = topology.body_labels(len(faces), touching)
    measures = topology.measure(triangles, face_body, bodies)
    report.update(
        bodies=bodies, watertight=edges.watertight,
        winding_consistent=edges.winding_consistent, open_edges=edges.open_edges,
        nonmanifold_edges=edges.nonmanifold_edges,
    )
    _check_surface(report, edges, len(faces))
    volume, inverted = _right_way_out(measures, triangles, face_body)
    if inverted:
        report["inverted_normals"] = True
        _warn(report, finding(
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
    report["volume_cm3"] = _significant(volume / 1000)
    report["surface_cm2"] = _significant(measures.surface_mm2 / 100)
    if bodies > 1:
        _warn(report, finding(
            "multiple_bodies",
            N_("The model has {count} separate parts; they will be printed together."),
            count=bodies,
        ))
    _check_units(report, bbox)
    _check_fit(report, vertices, bbox, material, printers)
    _estimate(report, volume, measures, bbox, material, params, copies)
    return MeshGeometry(vertices, faces)


#: Above this many (negative × positive) body pairs, skip the per-body inside-out check.
_MAX_BODY_PAIRS = 10_000_000


def _right_way_out(
    measures: topology.Measures, triangles: np.ndarray, face_body: np.ndarray
) -> tuple[float, int]:
    """Return (volume with inside-out parts turned right, how many parts were inside out).

    A part with negative volume is inside out, unless it sits within a positive part: then it
    is a deliberate hollow (an inner shell facing inwards) and its volume rightly subtracts.
    """
    per_body = measures.body_volumes_mm3
    negative = np.flatnonzero(per_body < 0)
    positive = np.flatnonzero(per_body > 0)
    if len(negative) == 0:
        return measures.volume_mm3, 0
    if len(positive) == 0:
        return -measures.volume_mm3, len(negative)
    if len(negative) * len(positive) > _MAX_BODY_PAIRS:  # absurd part counts: judge the total
        total = measures.volume_mm3
        return abs(total), int(total < 0)
    bodies = len(per_body)
    low = np.full((bodies, 3), np.inf)
    high = np.full((bodies, 3), -np.inf)
    np.minimum.at(low, face_body, triangles.min(axis=1))
    np.maximum.at(high, face_body, triangles.max(axis=1))
    enclosed = (
        (low[positive][:, None] <= low[negative][None]).all(axis=2)
        & (high[negative][None] <= high[positive][:, None]).all(axis=2)
    ).any(axis=0)
    inside_out = negative[~enclosed]
    return measures.volume_mm3 - 2 * float(per_body[inside_out].sum()), len(inside_out)


def _significant(value: float, digits: int = 6) -> float:
    """Round to significant digits: a part drawn in inches may be 0.0015 cm³."""
    return float(f"{value:.{digits}g}")


def _check_surface(report: dict[str, Any], edges: topology.EdgeFacts, faces: int) -> None:
    paired = 1 - (edges.open_edges + edges.nonmanifold_edges) / (3 * faces)
    if paired < _SOUP_PAIRED_SHARE:
        raise Refused(
            "triangle_soup",
            N_("The model's triangles are not joined into a surface ({share}% are loose): it "
               "has no inside to fill. Export it as a solid."),
            share=round(100 * (1 - paired)),
        )
    if not edges.watertight:
        _warn(report, finding(
            "not_watertight",
            N_("The model has holes ({count} open edges), so it is not watertight; the slicer "
               "may print it wrongly. Repair it (e.g. in your slicer or Meshmixer)."),
            count=edges.open_edges + edges.nonmanifold_edges,
        ))
    elif not edges.winding_consistent:
        _warn(report, finding(
            "inconsistent_winding",
            N_("Some faces of the model point the wrong way ({count} edges); repair it before "
               "printing."),
            count=edges.flipped_edges,
        ))


def _check_units(report: dict[str, Any], bbox: list[float]) -> None:
    guess = guess_units((bbox[0], bbox[1], bbox[2]))
    report["units_guess"] = guess.unit
    report["suggested_scale"] = guess.scale
    if guess.unit != "mm":
        scaled = [round(v * guess.scale, 1) for v in bbox]
        _warn(report, finding(
            "units_suspect",
            N_("The model is only {size} mm long: it was probably drawn in {unit}. Scaled "
               "×{scale} it would be {scaled_x} × {scaled_y} × {scaled_z} mm."),
            size=round(max(bbox), 2), unit=guess.unit, scale=guess.scale,
            scaled_x=scaled[0], scaled_y=scaled[1], scaled_z=scaled[2],
        ))


def _check_fit(
    report: dict[str, Any],
    vertices: np.ndarray,
    bbox: list[float],
    material: MaterialSpec | None,
    printers: Sequence[PrinterSpec],
) -> None:
    size = (bbox[0], bbox[1], bbox[2])
    candidates = [p for p in printers if material is None or material.id in p.materials]
    footprints = None
    for printer in candidates:
        orientation = fit_orientation(size, printer.build_volume_mm)
        if orientation is None:
            if footprints is None:  # the convex hull only when the box does not fit
                footprints = footprints_for_fit(vertices)
            orientation = fit_orientation(size, printer.build_volume_mm, footprints)
        if orientation is not None:
            report["fits"].append(printer.id)
            report["orientation"][printer.id] = orientation
    if candidates and not report["fits"]:
        largest = max(candidates, key=lambda p: float(np.prod(p.build_volume_mm)))
        _warn(report, finding(
            "fits_no_printer",
            N_("At {x} × {y} × {z} mm the model does not fit any printer{for_material} (the "
               "largest takes {bx} × {by} × {bz} mm). Scale it down or cut it into parts."),
            x=round(bbox[0], 1), y=round(bbox[1], 1), z=round(bbox[2], 1),
            for_material=f" for {material.id}" if material else "",
            bx=largest.build_volume_mm[0], by=largest.build_volume_mm[1],
            bz=largest.build_volume_mm[2],
        ))
    elif printers and not candidates and material is not None:
        _warn(report, finding(
            "no_printer_for_material",
            N_("No printer here takes {material}."), material=material.id,
        ))


def _estimate(
    report: dict[str, Any],
    volume: float,
    measures: topology.Measures,
    bbox: list[float],
    material: MaterialSpec | None,
    params: PrintParams,
    copies: int,
) -> None:
    density = (material.density_g_cm3 if material else None) or DEFAULT_DENSITY_G_CM3
    price = material.price_per_kg if material else None
    estimate = estimate_print(
        volume, measures.surface_mm2, (bbox[0], bbox[1], bbox[2]), params, density,
        price or 0.0, copies, footprint_mm2=measures.footprint_mm2,
        wall_mm2=measures.wall_mm2,
    )
    report.update(
        material_g=estimate.material_g, filament_m=estimate.filament_m,
        estimated_seconds=estimate.seconds, cost=estimate.cost if price is not None else None,
    )
