"""The judgements of ``analyse_mesh``: each adds its measures and findings to the report.

Separate from the reading and measuring in ``mesh.py`` so each stays short; every function
here works on plain numbers and the report dict.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fabqueue.analysis import topology
from fabqueue.analysis.outline import Outline
from fabqueue.core.estimates import PrintParams, estimate_print
from fabqueue.core.findings import N_, Finding, Refused, finding
from fabqueue.core.placement import placement
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
    faces: np.ndarray,
    face_body: np.ndarray,
    edges: topology.EdgeFacts,
) -> tuple[float, int]:
    """Return (volume with inside-out parts turned right, how many parts were inside out).

    A part with negative volume is inside out, unless it sits within a positive part: then it
    is a deliberate hollow (an inner shell facing inwards) and its volume rightly subtracts.
    Only a closed, consistently wound mesh has meaningful volumes per part; a closed mesh with
    some faces turned over is measured rewound (its faces made to agree, part by part: summed
    as they are, flipped faces cancel good ones and multibody.stl measured 230 mm³ instead of
    122); otherwise only the sign of the whole is judged.
    """
    if edges.watertight and not edges.winding_consistent:
        rewound = _rewound(triangles, faces)
        remeasured = topology.measure(rewound, face_body, len(measures.body_volumes_mm3))
        volume, _ = _judge_parts(remeasured, rewound, face_body)
        return volume, int(measures.volume_mm3 < 0)
    if not (edges.watertight and edges.winding_consistent):
        total = measures.volume_mm3
        return abs(total), int(total < 0)
    return _judge_parts(measures, triangles, face_body)


def _rewound(triangles: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """The triangles with faces turned over so that each closed part is wound one way.

    A graph of 2n nodes (face kept, face turned over): two faces sharing an edge that runs
    the same way in both must differ, otherwise agree. Each orientable part splits into two
    components, one per consistent winding; keep the faces whose "kept" node has the lower
    label. Only for closed meshes (every edge shared by exactly two faces).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(faces)
    start = faces.ravel()
    end = np.roll(faces, -1, axis=1).ravel()
    key = np.minimum(start, end).astype(np.int64)
    key *= int(faces.max()) + 1
    key += np.maximum(start, end)
    order = np.argsort(key, kind="stable")
    shared = key[order[1:]] == key[order[:-1]]
    del key
    first, second = order[:-1][shared], order[1:][shared]
    del order, shared
    same_way = (start[first] < end[first]) == (start[second] < end[second])
    a, b = (first // 3).astype(np.int32), (second // 3).astype(np.int32)
    del first, second
    rows = np.concatenate([a, a + n])
    cols = np.concatenate([np.where(same_way, b + n, b), np.where(same_way, b, b + n)])
    del a, b, same_way
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(2 * n, 2 * n))
    del rows, cols
    _, label = connected_components(graph.tocsr(), directed=False)
    del graph
    turn = label[:n] > label[n:]
    rewound = triangles.copy()
    rewound[turn] = rewound[turn][:, ::-1]
    return rewound


def _judge_parts(
    measures: topology.Measures, triangles: np.ndarray, face_body: np.ndarray
) -> tuple[float, int]:
    """Right-way-out volume of a consistently wound closed mesh, and its inside-out parts."""
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
    # The slicer turns the part by the same rule (core.placement): what fits here slices.
    candidates = [p for p in printers if material is None or material.id in p.materials]
    for printer in candidates:
        placed = placement(vertices, printer.build_volume_mm)
        if placed is not None:
            report["fits"].append(printer.id)
            report["orientation"][printer.id] = placed.recipe
    if candidates and not report["fits"]:
        largest = max(candidates, key=lambda p: float(np.prod(p.build_volume_mm)))
        sizes = {"x": round(bbox[0], 1), "y": round(bbox[1], 1), "z": round(bbox[2], 1),
                 "bx": largest.build_volume_mm[0], "by": largest.build_volume_mm[1],
                 "bz": largest.build_volume_mm[2]}
        # Two sentences, not an English " for PLA" spliced into a translated one.
        warn(report, finding(
            "fits_no_printer",
            N_("At {x} × {y} × {z} mm the model does not fit any printer for {material} (the "
               "largest takes {bx} × {by} × {bz} mm). Scale it down or cut it into parts."),
            material=material.id, **sizes,
        ) if material else finding(
            "fits_no_printer",
            N_("At {x} × {y} × {z} mm the model does not fit any printer (the largest takes "
               "{bx} × {by} × {bz} mm). Scale it down or cut it into parts."),
            **sizes,
        ))
    elif printers and not candidates and material is not None:
        warn(report, finding(
            "no_printer_for_material",
            N_("No printer here takes {material}."), material=material.id,
        ))


#: Bins of the face normal's vertical part (−1 … 1) for the skins' area per slope.
SLOPE_BINS = 64
_SLOPE_CHUNK = 1 << 17
_SLOPE_SAMPLE = 1 << 18
_SEGMENT_SAMPLE = 1 << 16


def slope_areas(
    triangles: np.ndarray, share: np.ndarray | None = None
) -> list[tuple[float, float]]:
    """The surface's area per slope: ``(mean normal z, area mm²)`` per occupied bin.

    What the estimate needs to put top and bottom skins under every level or sloping
    surface, less what the perimeters already cover on steep ones. Float32 per face in
    chunks; above ``_SLOPE_SAMPLE`` triangles every k-th one stands for k (a distribution of
    area over 64 bins needs no million samples, and the 1M-triangle upload keeps its budget).
    """
    stride = max(1, -(-len(triangles) // _SLOPE_SAMPLE))
    sample = triangles[::stride]
    area = np.zeros(SLOPE_BINS)  # twice the area, as the cross product gives it
    lift = np.zeros(SLOPE_BINS)
    for lo in range(0, len(sample), _SLOPE_CHUNK):
        part = sample[lo : lo + _SLOPE_CHUNK]
        a = part[:, 1] - part[:, 0]
        b = part[:, 2] - part[:, 0]
        nx = a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1]
        ny = a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2]
        nz = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
        nx *= nx  # in place from here: fewer float32 temporaries on a 1M-triangle upload
        ny *= ny
        nx += ny
        nx += nz * nz
        twice = np.sqrt(nx, out=nx)
        unit_z = np.divide(nz, twice, out=np.zeros_like(twice), where=twice > 0)
        unit_z += 1
        unit_z *= SLOPE_BINS / 2
        index = unit_z.astype(np.intp)
        np.clip(index, 0, SLOPE_BINS - 1, out=index)
        if share is not None:
            weight = share[::stride][lo : lo + _SLOPE_CHUNK]
            twice *= weight
            nz *= weight
        area += np.bincount(index, weights=twice, minlength=SLOPE_BINS)
        lift += np.bincount(index, weights=nz, minlength=SLOPE_BINS)
    scale = len(triangles) / max(len(sample), 1) / 2  # the cross product is twice the area
    return [(float(z / a), float(a * scale)) for z, a in zip(lift, area, strict=True) if a > 0]


def outline_segment_mm(triangles: np.ndarray) -> float:
    """Mean length of the straight runs a layer's outline is cut into, mm.

    Each face crossing a layer leaves one segment there; over all layers its segments add up
    to its area × the sideways part of its normal, and it crosses z-extent ÷ layer height
    layers, so the mean is Σ area·|n_h| ÷ Σ z-extent. Perimeters slow down at every joint
    (acceleration), so the estimate needs this: a facetted organic part's runs are a fraction
    of a millimetre, a box's the box's side. A mean needs no million faces: above
    ``_SEGMENT_SAMPLE`` every k-th one stands for k (a few milliseconds on the 1M bench).
    """
    part = triangles[:: max(1, -(-len(triangles) // _SEGMENT_SAMPLE))]
    a = part[:, 1] - part[:, 0]
    b = part[:, 2] - part[:, 0]
    nx = a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1]
    ny = a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2]
    sideways = float(np.sqrt(nx * nx + ny * ny).sum(dtype=np.float64)) / 2
    z0, z1, z2 = part[:, 0, 2], part[:, 1, 2], part[:, 2, 2]
    top = np.maximum(np.maximum(z0, z1), z2)
    rise = float((top - np.minimum(np.minimum(z0, z1), z2)).sum(dtype=np.float64))
    return sideways / rise if rise > 0 else 0.0


def base_extents(vertices: np.ndarray, first_layer_mm: float) -> tuple[float, float]:
    """X and y extents of the vertices within the first layer: what the skirt goes round.

    A part standing on a small foot (multibody.stl's lower body, a sphere) gets a short
    skirt, as PrusaSlicer slices it, where the bounding box would give a long one.
    """
    z = vertices[:, 2]
    near = vertices[z <= z.min() + first_layer_mm]
    size = near[:, :2].max(axis=0) - near[:, :2].min(axis=0)
    return float(size[0]), float(size[1])


def estimate(
    report: dict[str, Any],
    volume: float,
    measures: topology.Measures,
    bbox: list[float],
    material: MaterialSpec | None,
    params: PrintParams,
    copies: int,
    slopes: list[tuple[float, float]] | None = None,
    base: tuple[float, float] | None = None,
    segment_mm: float | None = None,
    outline: Outline | None = None,
    loops: Sequence[tuple[float, float, int, bool]] = (),
) -> None:
    density = (material.density_g_cm3 if material else None) or DEFAULT_DENSITY_G_CM3
    price = material.price_per_kg if material else None
    result = estimate_print(
        volume, measures.surface_mm2, (bbox[0], bbox[1], bbox[2]), params, density,
        price or 0.0, copies, footprint_mm2=measures.footprint_mm2,
        wall_mm2=measures.wall_mm2, bodies=len(measures.body_volumes_mm3), slopes=slopes or (),
        base_mm=base, segment_mm=segment_mm, turns=outline.turns if outline else (),
        loops=loops, small_holes_mm2=outline.tight_concave_mm2 if outline else 0.0,
        net_turn_mm=outline.net_turn_mm if outline else None,
    )
    report.update(
        material_g=result.material_g, filament_m=result.filament_m,
        estimated_seconds=result.seconds, cost=result.cost if price is not None else None,
    )
