"""Pre-slicing estimates from a mesh's measures and a print profile's parameters (pure).

A closed-form shell-plus-infill model: what a slicer extrudes is walls (perimeters along the
side surface, each inset loop shorter), solid skins (top and bottom layers under every level
or gently sloping surface, inside the perimeters) and sparse infill (a fraction of what
remains inside, plus the anchors joining its lines). Grams within ±5% of PrusaSlicer's on
the sample models in milliseconds, so a resident sees grams, metres, time and cost at
upload, before any slicing. The time, from the same volumes, is PrusaSlicer's own estimate
as ``fabqueue.core.print_time`` models it (bench/RESULTS.md
"Estimate accuracy").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from fabqueue.core.print_params import PrintParams, Volumes, extrusion_spacing
from fabqueue.core.print_time import loop_counts, print_seconds

__all__ = ["PrintEstimate", "PrintParams", "estimate_print"]


@dataclass(frozen=True)
class PrintEstimate:
    material_g: float
    filament_m: float
    seconds: float
    cost: float


def _feature_volumes(
    volume_mm3: float,
    surface_mm2: float,
    bbox_mm: tuple[float, float, float],
    params: PrintParams,
    footprint_mm2: float | None,
    wall_mm2: float | None,
    bodies: int = 1,
    slopes: Sequence[tuple[float, float]] = (),
    net_loops: float = 0.0,
) -> Volumes:
    height = max(bbox_mm[2], params.layer_height_mm)
    footprint = footprint_mm2 if footprint_mm2 is not None else volume_mm3 / height
    footprint = min(footprint, bbox_mm[0] * bbox_mm[1])
    spacing = extrusion_spacing(params)
    side_area = wall_mm2 if wall_mm2 is not None else max(surface_mm2 - 2 * footprint, 0.0)
    # Each perimeter runs inset from the outline, the external one by half a width and
    # each further one a spacing more; an inset loop is shorter by 2π × the inset (longer
    # round a hole): per layer, by 2π × inset × (islands − holes) (``net_loops``).
    insets = [params.extrusion_width_mm / 2 + i * spacing for i in range(params.perimeters)]
    shorter = 2 * math.pi * net_loops * spacing * height
    walls = min(max(side_area * params.perimeters * spacing - shorter * sum(insets), 0.0),
                volume_mm3)
    external = min(max(side_area * spacing - shorter * insets[0], 0.0), walls) if (
        insets) else 0.0
    # skins lie under every level surface (the footprint counts pocket floors and ledges
    # too), however far it is from the average cross-section; the inside bounds them
    inner = max(volume_mm3 - walls, 0.0)
    if slopes:
        top_skin, bottom_skin, banded, band = _skin_bands(slopes, params)
    else:
        banded = band = 0.0
        top_skin = footprint * params.top_solid_layers * params.layer_height_mm
        bottom_skin = footprint * params.bottom_solid_layers * params.layer_height_mm
    # the skins fill inside the perimeters: the ring they take in every layer is walls
    ring = side_area / height * params.perimeters * spacing
    inside = max(1 - ring / footprint, 0.0) if footprint > 0 else 0.0
    bottom = min(bottom_skin * inside, inner)
    top = min(top_skin * inside, inner - bottom)
    rest = max(inner - bottom - top, 0.0)
    density = _infill_density(volume_mm3, side_area, height, params, bodies)
    infill = rest * density * params.infill_overlap
    anchors = 0.0
    if density < 1 and inner > 0:
        # connected infill: neighbouring line ends are joined along the innermost perimeter,
        # every other gap (a zigzag), so each sparse layer adds half its outline; the sparse
        # layers are the inside's share left after the skins
        anchors = min(0.5 * side_area * spacing * rest / inner, rest)
    infill = min(infill + anchors, rest)
    first_layer = min(footprint * params.first_layer_height_mm, volume_mm3)
    return Volumes(external, walls - external, bottom, top, infill, first_layer,
                    min(anchors, infill), banded, band)


def _skins_by_slope(
    slopes: Sequence[tuple[float, float]], params: PrintParams
) -> tuple[float, float]:
    """Top and bottom skin volumes from the surface's area per slope.

    Under a face of area A whose normal has vertical part n_z and sideways part n_h, the skins
    fill A·|n_z| × layers × layer height: per layer, a band of layers × layer height × cot(slope)
    along the edge. Where that band is narrower than the perimeter ring (perimeters × spacing)
    the perimeters cover it and PrusaSlicer prints no skin at all; where it is wider, the skin
    grows back over the ring to anchor (its 3 mm margin), so the whole band is solid. Sliced
    roofs at 15–80°, 0.2 and 0.15 mm layers, match this step (tests/core/test_estimates.py).
    """
    top, bottom, _, _ = _skin_bands(slopes, params)
    return top, bottom


def _skin_bands(
    slopes: Sequence[tuple[float, float]], params: PrintParams
) -> tuple[float, float, float, float]:
    """``_skins_by_slope``, the share of them laid under slopes and those bands' mean width.

    Under a slope the skin of a layer is a band layers × layer height × cot(slope) wide: its
    lines cross it, so they are that short (rabbit's 1.5 mm solid moves), where under a
    level surface they span the region.
    """
    ring = params.perimeters * extrusion_spacing(params)
    top = bottom = 0.0
    banded = narrow = 0.0
    for nz, area in slopes:
        sideways = math.sqrt(max(1.0 - nz * nz, 0.0))
        layers = params.top_solid_layers if nz > 0 else params.bottom_solid_layers
        depth = abs(nz) * layers * params.layer_height_mm
        if depth <= sideways * ring:
            continue
        if nz > 0:
            top += area * depth
        else:
            bottom += area * depth
        if sideways > 1e-3:
            banded += area * depth
            narrow += area * depth * depth / sideways
    share = banded / (top + bottom) if top + bottom > 0 else 0.0
    return top, bottom, share, narrow / banded if banded > 0 else 0.0


def _infill_density(
    volume_mm3: float, side_area: float, height: float, params: PrintParams, bodies: int
) -> float:
    """The nominal density, or solid when a body's inside is too small for sparse infill.

    PrusaSlicer fills infill regions under ``solid_infill_below_area`` solid. The average
    region per layer and body is its cross-section (volume ÷ height) less the perimeters'
    ring, the infill reaching a quarter width into the last perimeter (PrusaSlicer's default
    infill_overlap): a 6 mm square pillar comes out solid, a 10 mm one sparse, as it slices.
    """
    threshold = params.solid_infill_below_area_mm2
    if threshold <= 0:
        return params.fill_density
    section = volume_mm3 / height / max(bodies, 1)
    ring_width = params.perimeters * extrusion_spacing(params) - 0.25 * params.extrusion_width_mm
    ring = side_area / height / max(bodies, 1) * ring_width
    return 1.0 if section - ring < threshold else params.fill_density


def _skirt_mm3(base_mm: tuple[float, float], params: PrintParams) -> float:
    """The skirt's filament: loops ``skirt_distance`` around the print, once per print.

    Each loop runs round the first layer's outline grown by the distance: the perimeter of
    the base's extents plus 2π × distance (the rounded corners); a round base's hull is
    shorter, which the loops' spacing outward roughly makes up. PrusaSlicer adds loops until
    ``min_skirt_length`` is reached.
    """
    if params.skirts <= 0 or params.skirt_height_layers <= 0:
        return 0.0
    spacing = params.first_layer_extrusion_width_mm - params.first_layer_height_mm * (
        1 - math.pi / 4)
    around = 2 * (base_mm[0] + base_mm[1]) + 2 * math.pi * params.skirt_distance_mm
    loops = [around + 2 * math.pi * spacing * i for i in range(params.skirts)]
    while params.min_skirt_length_mm > sum(loops) > 0:
        loops.append(loops[-1] + 2 * math.pi * spacing)
    layer_section = spacing * params.first_layer_height_mm
    return sum(loops) * layer_section * params.skirt_height_layers


def estimate_print(
    volume_mm3: float,
    surface_mm2: float,
    bbox_mm: tuple[float, float, float],
    params: PrintParams,
    density_g_cm3: float,
    price_per_kg: float,
    copies: int = 1,
    *,
    footprint_mm2: float | None = None,
    wall_mm2: float | None = None,
    bodies: int = 1,
    slopes: Sequence[tuple[float, float]] = (),
    base_mm: tuple[float, float] | None = None,
    segment_mm: float | None = None,
    turns: Sequence[tuple[float, float]] = (),
    loops: Sequence[tuple[float, float, int, bool]] = (),
    small_holes_mm2: float = 0.0,
    net_turn_mm: float | None = None,
) -> PrintEstimate:
    """Estimate filament grams and metres, printing seconds and material cost.

    ``footprint_mm2`` is the part's area seen from above (top and bottom skins); without it
    the average cross-section (volume ÷ height) stands in, exact for prisms. ``wall_mm2`` is
    the area seen from the side (Σ face area × the horizontal part of its unit normal), what
    perimeters cover layer after layer: for a sphere π²r², where surface minus top and bottom
    (the fallback) gives only 2πr². ``bodies``: separate parts share the volume, so each has
    a smaller inside (see ``_infill_density``). ``slopes``: ``(normal z, area mm²)`` per slope
    of the surface (``fabqueue.analysis.mesh_checks.slope_areas``), for the skins under every
    level or sloping surface (see ``_skins_by_slope``); without it, the footprint's.
    ``base_mm``: x and y extents of the first layer, which the skirt goes round (once per
    print, not per copy); without it, the bounding box's. ``segment_mm``: the mean straight
    run of a layer's outline (``fabqueue.analysis.mesh_checks.outline_segment_mm``), where
    perimeters slow for the joint; without it, a share of the region's mean chord.
    """
    if volume_mm3 <= 0 or copies <= 0:
        return PrintEstimate(0.0, 0.0, 0.0, 0.0)
    height = max(bbox_mm[2], params.layer_height_mm)
    islands, holes, _ = loop_counts(loops, height, wall_mm2 or 0.0, small_holes_mm2, bodies,
                                    net_turn_mm)
    one = _feature_volumes(volume_mm3, surface_mm2, bbox_mm, params, footprint_mm2, wall_mm2,
                           bodies, slopes, islands - holes if loops else 0.0)
    skirt = _skirt_mm3(base_mm or (bbox_mm[0], bbox_mm[1]), params)
    side = wall_mm2 if wall_mm2 is not None else surface_mm2 - 2 * volume_mm3 / max(
        bbox_mm[2], params.layer_height_mm)
    chord = math.pi * volume_mm3 / max(side, 1e-9) if side > 0 else max(bbox_mm[0], bbox_mm[1])
    extruded_mm3 = one.total * copies + skirt
    grams = extruded_mm3 / 1000 * density_g_cm3
    filament_section = math.pi * (params.filament_diameter_mm / 2) ** 2
    return PrintEstimate(
        material_g=round(grams, 2),
        filament_m=round(extruded_mm3 / filament_section / 1000, 3),
        seconds=round(print_seconds(one, bbox_mm, params, bodies, chord, segment_mm, side, turns,
                               loops, small_holes_mm2, net_turn_mm) * copies
                      + skirt / (params.first_layer_speed_mm_s * extrusion_spacing(params)
                                 * params.first_layer_height_mm), 1),
        cost=round(grams / 1000 * price_per_kg, 2),
    )
