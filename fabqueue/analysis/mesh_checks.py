"""The judgements of ``analyse_mesh``: each adds its measures and findings to the report.

Separate from the reading and measuring in ``mesh.py`` so each stays short; every function
here works on plain numbers and the report dict.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fabqueue.analysis import topology
from fabqueue.analysis.footprint import footprints_for_fit
from fabqueue.core.estimates import PrintParams, estimate_print
from fabqueue.core.findings import N_, Finding, Refused, finding
from fabqueue.core.fit import fit_orientation
from fabqueue.core.specs import MaterialSpec, PrinterSpec
from fabqueue.core.units import guess_units

#: PLA, when the upload names no material: estimates still show grams and metres.
DEFAULT_DENSITY_G_CM3 = 1.24
#: Below this share of paired edges the triangles do not form a surface at all.
_SOUP_PAIRED_SHARE = 0.5


def warn(report: dict[str, Any], item: Finding) -> None:
    report["warnings"].append(item.to_dict())


#: Above this many (negative × positive) body pairs, skip the per-body inside-out check.
_MAX_BODY_PAIRS = 10_000_000


def right_way_out(
    measures: topology.Measures,
    triangles: np.ndarray,
    face_body: np.ndarray,
    edges: topology.EdgeFacts,
) -> tuple[float, int]:
    """Return (volume with inside-out parts turned right, how many parts were inside out).

    A part with negative volume is inside out, unless it sits within a positive part: then it
    is a deliberate hollow (an inner shell facing inwards) and its volume rightly subtracts.
    Only a closed, consistently wound mesh has meaningful volumes per part; otherwise only the
    sign of the whole is judged.
    """
    if not (edges.watertight and edges.winding_consistent):
        total = measures.volume_mm3
        return abs(total), int(total < 0)
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


def significant(value: float, digits: int = 6) -> float:
    """Round to significant digits: a part drawn in inches may be 0.0015 cm³."""
    return float(f"{value:.{digits}g}")


def check_surface(report: dict[str, Any], edges: topology.EdgeFacts, faces: int) -> None:
    paired = 1 - (edges.open_edges + edges.nonmanifold_edges) / (3 * faces)
    if paired < _SOUP_PAIRED_SHARE:
        raise Refused(
            "triangle_soup",
            N_("The model's triangles are not joined into a surface ({share}% are loose): it "
               "has no inside to fill. Export it as a solid."),
            share=round(100 * (1 - paired)),
        )
    if not edges.watertight:
        warn(report, finding(
            "not_watertight",
            N_("The model has holes ({count} open edges), so it is not watertight; the slicer "
               "may print it wrongly. Repair it (e.g. in your slicer or Meshmixer)."),
            count=edges.open_edges + edges.nonmanifold_edges,
        ))
    elif not edges.winding_consistent:
        warn(report, finding(
            "inconsistent_winding",
            N_("Some faces of the model point the wrong way ({count} edges); repair it before "
               "printing."),
            count=edges.flipped_edges,
        ))


def check_units(report: dict[str, Any], bbox: list[float]) -> None:
    guess = guess_units((bbox[0], bbox[1], bbox[2]))
    report["units_guess"] = guess.unit
    report["suggested_scale"] = guess.scale
    if guess.unit != "mm":
        scaled = [round(v * guess.scale, 1) for v in bbox]
        warn(report, finding(
            "units_suspect",
            N_("The model is only {size} mm long: it was probably drawn in {unit}. Scaled "
               "×{scale} it would be {scaled_x} × {scaled_y} × {scaled_z} mm."),
            size=round(max(bbox), 2), unit=guess.unit, scale=guess.scale,
            scaled_x=scaled[0], scaled_y=scaled[1], scaled_z=scaled[2],
        ))


def check_fit(
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
        warn(report, finding(
            "fits_no_printer",
            N_("At {x} × {y} × {z} mm the model does not fit any printer{for_material} (the "
               "largest takes {bx} × {by} × {bz} mm). Scale it down or cut it into parts."),
            x=round(bbox[0], 1), y=round(bbox[1], 1), z=round(bbox[2], 1),
            for_material=f" for {material.id}" if material else "",
            bx=largest.build_volume_mm[0], by=largest.build_volume_mm[1],
            bz=largest.build_volume_mm[2],
        ))
    elif printers and not candidates and material is not None:
        warn(report, finding(
            "no_printer_for_material",
            N_("No printer here takes {material}."), material=material.id,
        ))


def estimate(
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
    result = estimate_print(
        volume, measures.surface_mm2, (bbox[0], bbox[1], bbox[2]), params, density,
        price or 0.0, copies, footprint_mm2=measures.footprint_mm2,
        wall_mm2=measures.wall_mm2, bodies=len(measures.body_volumes_mm3),
    )
    report.update(
        material_g=result.material_g, filament_m=result.filament_m,
        estimated_seconds=result.seconds, cost=result.cost if price is not None else None,
    )
