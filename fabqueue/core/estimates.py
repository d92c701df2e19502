"""Pre-slicing estimates from a mesh's measures and a print profile's parameters (pure).

A closed-form shell-plus-infill model: what a slicer extrudes is walls (perimeters along the
side surface, each inset loop shorter), solid skins (top and bottom layers under every level
or gently sloping surface, inside the perimeters) and sparse infill (a fraction of what
remains inside, plus the anchors joining its lines). Grams within ±5% of PrusaSlicer's on
the sample models in milliseconds, so a resident sees grams, metres, time and cost at
upload, before any slicing. Time follows PrusaSlicer's own estimate: every move accelerates
and slows down (short moves never reach their speed), perimeters slow only at joints that
turn enough for the jerk limit, small loops print at the small-perimeter speed, each loop is
travelled to with a retraction, and small layers are slowed for cooling (bench/RESULTS.md
"Estimate accuracy").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PrintParams:
    """The profile parameters an estimate needs, read from a PrusaSlicer profile."""

    layer_height_mm: float = 0.2
    first_layer_height_mm: float = 0.2
    nozzle_diameter_mm: float = 0.4
    extrusion_width_mm: float = 0.45
    perimeters: int = 2
    top_solid_layers: int = 5
    bottom_solid_layers: int = 4
    fill_density: float = 0.15  # 0..1
    filament_diameter_mm: float = 1.75
    perimeter_speed_mm_s: float = 45.0
    external_perimeter_speed_mm_s: float = 25.0
    infill_speed_mm_s: float = 80.0
    solid_infill_speed_mm_s: float = 40.0
    top_solid_infill_speed_mm_s: float = 30.0
    travel_speed_mm_s: float = 150.0
    first_layer_speed_mm_s: float = 20.0
    # Time per layer and body beyond the travel and retraction modelled below: none on the
    # samples (issue 20), kept as a knob for other printers.
    layer_overhead_s: float = 0.0
    # Every travel to another loop retracts, lifts, and undoes both (PrusaSlicer's defaults;
    # the profiles give theirs): the filament at the retract acceleration, the nozzle along Z.
    retract_length_mm: float = 2.0
    retract_speed_mm_s: float = 40.0
    retract_lift_mm: float = 0.0
    retract_acceleration: float = 1500.0
    z_acceleration: float = 500.0
    z_jerk_mm_s: float = 0.2
    # Sparse infill as laid against its nominal density (PrusaSlicer lays the nominal; the
    # anchors joining its lines are counted apart): a knob for other slicers.
    infill_overlap: float = 1.0
    # PrusaSlicer fills interior regions smaller than this solid (its default, mm²).
    solid_infill_below_area_mm2: float = 70.0
    # The skirt: loops around the print on the first layers (PrusaSlicer's defaults). Its
    # filament is in PrusaSlicer's figure; the start G-code's purge line is not.
    skirts: int = 1
    skirt_distance_mm: float = 6.0
    skirt_height_layers: int = 1
    min_skirt_length_mm: float = 0.0
    first_layer_extrusion_width_mm: float = 0.42
    # Motion limits PrusaSlicer's time estimate applies (M204 per feature, capped by the
    # machine's extruding limit; classic jerk at the corners), mm/s² and mm/s.
    perimeter_acceleration: float = 800.0
    infill_acceleration: float = 1250.0
    default_acceleration: float = 1000.0
    first_layer_acceleration: float = 800.0
    jerk_mm_s: float = 8.0
    # Cooling: a layer printed faster than this is slowed to it (PrusaSlicer's default 5 s).
    slowdown_below_layer_time_s: float = 5.0
    min_print_speed_mm_s: float = 10.0
    # Loops shorter than SMALL_LOOP_MM (holes, thin parts) print at this (PrusaSlicer's 15).
    small_perimeter_speed_mm_s: float = 15.0
    # The first skin layer over sparse infill is bridged (PrusaSlicer's default 60).
    bridge_speed_mm_s: float = 60.0


@dataclass(frozen=True)
class PrintEstimate:
    material_g: float
    filament_m: float
    seconds: float
    cost: float


@dataclass(frozen=True)
class _Volumes:
    """Extruded volume per feature, mm³, one copy."""

    external: float
    perimeters: float
    bottom: float
    top: float
    infill: float
    first_layer: float
    anchors: float = 0.0  # of the infill: the short moves joining its lines
    # of the skins, the share laid as bands under slopes, and those bands' mean width (mm)
    banded: float = 0.0
    band_mm: float = 0.0

    @property
    def total(self) -> float:
        return self.external + self.perimeters + self.bottom + self.top + self.infill


def _extrusion_spacing(params: PrintParams) -> float:
    """Centre distance of neighbouring extrusions: the width minus the rounded edges' overlap."""
    return params.extrusion_width_mm - params.layer_height_mm * (1 - math.pi / 4)


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
) -> _Volumes:
    height = max(bbox_mm[2], params.layer_height_mm)
    footprint = footprint_mm2 if footprint_mm2 is not None else volume_mm3 / height
    footprint = min(footprint, bbox_mm[0] * bbox_mm[1])
    spacing = _extrusion_spacing(params)
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
    return _Volumes(external, walls - external, bottom, top, infill, first_layer,
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
    ring = params.perimeters * _extrusion_spacing(params)
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
    ring_width = params.perimeters * _extrusion_spacing(params) - 0.25 * params.extrusion_width_mm
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


# Without the mesh's joints or segment length, perimeters run between full slow-downs a tenth
# of the region's mean chord (the G-code's perimeter moves on the samples; issue 20).
PERIMETER_LINE_SHARE = 0.1


# A joint turning less than this is two coplanar faces cut by the triangulation: PrusaSlicer
# merges the collinear points (gcode_resolution), so the outline has no joint there.
MIN_TURN_RAD = math.radians(1.0)


def _perimeter_speed(speed: float, accel: float, jerk: float, outline_mm: float,
                     loops: float, turns: Sequence[tuple[float, float]],
                     height: float) -> float:
    """Average speed of a perimeter printed at ``speed`` round the mesh's outline joints.

    Per layer the outline (``outline_mm`` long, in ``loops`` closed loops) has, per turning
    angle θ, Σ z-extent ÷ height joints (``fabqueue.analysis.outline.outline_turns``). At a
    joint the velocity turns by 2·v·sin(θ/2); the planner keeps the largest speed whose
    change stays within the jerk, u = jerk ÷ (2 sin(θ/2)): a shallow joint costs nothing,
    a square corner slows to the jerk. Every joint starts a run of the mean spacing that
    accelerates from its corner speed and slows to it again (``_effective_speed``); each
    loop's seam starts and ends at the jerk speed.
    """
    joints = [(crossings_mm / height, min(speed, jerk / (2 * math.sin(angle / 2))))
              for angle, crossings_mm in turns if angle >= MIN_TURN_RAD]
    count = sum(n for n, _ in joints) + loops
    if outline_mm <= 0 or count <= 0:
        return speed
    run = outline_mm / count
    seconds = loops * run / _effective_speed(speed, run, accel, jerk) + sum(
        n * run / _effective_speed(speed, run, accel, corner) for n, corner in joints)
    return outline_mm / seconds


def _effective_speed(speed: float, line_mm: float, accel: float, jerk: float) -> float:
    """Average speed over a line that starts and ends at the corner (jerk) speed.

    A trapezoid: accelerate at ``accel`` up to ``speed``, cruise, slow down again; on a line
    too short to reach ``speed`` a triangle peaking at √(jerk² + accel × length). This is
    where most of the difference between volume ÷ nominal speed and PrusaSlicer's figure
    went: its lines are a few millimetres long and it simulates every one.
    """
    if speed <= jerk or accel <= 0 or line_mm <= 0:
        return speed
    ramp = (speed * speed - jerk * jerk) / accel  # both ramps' distance
    if line_mm >= ramp:
        seconds = line_mm / speed + (speed - jerk) ** 2 / (accel * speed)
    else:
        seconds = 2 * (math.sqrt(jerk * jerk + accel * line_mm) - jerk) / accel
    return line_mm / seconds


# Layers differ in size: the cooling rule is applied to layers spread evenly from none to
# twice the average extrusion (LAYER_SPREAD of the mean either side), LAYER_SAMPLES of them.
LAYER_SPREAD = 1.0
LAYER_SAMPLES = 8


def _cooled(extruding: float, plain: float, lengths: float, layers: int, floor: float,
            min_speed: float) -> float:
    """Extrusion seconds of ``layers`` layers after PrusaSlicer's cooling slowdown.

    PrusaSlicer judges a layer by length ÷ feed rate (``plain``, no acceleration): one that
    would take less than ``floor`` has its feed rates lowered until it takes ``floor``, but
    no move below ``min_speed``; what the printer then takes is that plus what acceleration
    adds (``extruding`` − ``plain``). The rule bends where a layer reaches the floor, so the
    average layer alone gets it wrong when small and large layers mix (a small part on a
    large one): it is applied over a spread of layer sizes around the average.
    """
    if layers <= 0 or extruding <= 0:
        return max(extruding, 0.0)
    total = 0.0
    for i in range(LAYER_SAMPLES):
        share = 1 + LAYER_SPREAD * (2 * (i + 0.5) / LAYER_SAMPLES - 1)
        seconds, judged = extruding / layers * share, plain / layers * share
        if judged < floor and min_speed > 0:
            seconds += max(min(floor, lengths / layers * share / min_speed) - judged, 0.0)
        total += seconds
    return total / LAYER_SAMPLES * layers


def _retraction_s(params: PrintParams) -> float:
    """One retraction cycle: pull the filament back and push it again, lift and lower.

    Each a short move from and to rest at its acceleration (the E and Z jerks are small).
    """
    def move(length: float, speed: float, accel: float, jerk: float) -> float:
        return length / _effective_speed(speed, length, accel, jerk) if length > 0 else 0.0

    pull = move(params.retract_length_mm, params.retract_speed_mm_s,
                params.retract_acceleration, 0.0)
    lift = move(params.retract_lift_mm, params.travel_speed_mm_s, params.z_acceleration,
                params.z_jerk_mm_s)
    return 2 * (pull + lift)


# PrusaSlicer prints a perimeter loop no longer than this (2π × 6.5 mm) at the small-perimeter
# speed: holes and thin parts, where the loop is printed slowly for accuracy.
SMALL_LOOP_MM = 2 * math.pi * 6.5


def _loops(loops: Sequence[tuple[float, float, int, bool]], height: float, side_mm2: float,
           small_holes_mm2: float, bodies: int) -> tuple[float, float, float]:
    """Per layer: bodies crossed, holes crossed, and the share of the outline in small loops.

    ``loops`` per body: its height, its outline per layer, the holes through it and whether
    it stands clear of the others (``fabqueue.analysis.outline.body_outlines``). A body
    standing clear without holes is one loop per layer, small when its outline is (bodies
    that overlap are merged by the slicer: their loops are not theirs alone); in a body with
    holes, the concave bends tighter than a small loop's radius (``small_holes_mm2``, side
    area) are the small holes. Without ``loops``: every body in every layer, no holes, no
    small loops.
    """
    if not loops or height <= 0:
        return float(bodies), 0.0, 0.0
    islands = sum(h for h, *_ in loops) / height
    holes = sum(h * n for h, _, n, _ in loops) / height
    total = sum(h * outline for h, outline, *_ in loops) or side_mm2
    small = sum(h * outline for h, outline, n, alone in loops
                if alone and n == 0 and outline <= SMALL_LOOP_MM)
    if holes > 0:
        small += small_holes_mm2
    return islands, holes, min(small / total, 1.0) if total > 0 else 0.0


def _seconds(v: _Volumes, bbox_mm: tuple[float, float, float], params: PrintParams,
             bodies: int = 1, chord_mm: float = 10.0,
             segment_mm: float | None = None, side_mm2: float = 0.0,
             turns: Sequence[tuple[float, float]] = (),
             loops: Sequence[tuple[float, float, int, bool]] = (),
             small_holes_mm2: float = 0.0) -> float:
    """Extruded length per feature ÷ its acceleration-limited speed, per-layer travel, cooling.

    ``chord_mm`` is the mean chord of a layer's region (Cauchy: π × area ÷ outline, the
    same as π × volume ÷ side area): infill and skin lines span it (skins under slopes only
    their band). Each layer adds a travel per loop and a retraction per further loop; a layer
    quicker than ``slowdown_below_layer_time`` has its extrusion slowed as PrusaSlicer's
    cooling does.
    """
    section = _extrusion_spacing(params) * params.layer_height_mm  # mm² per mm of line
    height = max(bbox_mm[2], params.layer_height_mm)
    layers = max(math.ceil(height / params.layer_height_mm - 1e-9), 1)
    spacing = _extrusion_spacing(params)
    # Sparse infill lines span the region: on average its mean chord. Their ends are joined
    # by anchors along the perimeter as long as the gap between neighbouring lines of one
    # direction (grid: two directions, so 2 × spacing ÷ density).
    anchor_line = 2 * spacing / max(params.fill_density, 0.01)
    jerk = params.jerk_mm_s
    outline = side_mm2 / height

    def perimeter(speed: float, accel: float) -> float:
        """Average perimeter speed: round the mesh's joints, else runs of a fixed length."""
        if turns and outline > 0:
            return _perimeter_speed(speed, accel, jerk, outline, bodies, turns, height)
        line = segment_mm if segment_mm else PERIMETER_LINE_SHARE * chord_mm
        return _effective_speed(speed, line, accel, jerk)

    def lines(speed: float, line: float) -> float:
        return _effective_speed(speed, line, params.infill_acceleration, jerk)

    def zigzag(speed: float, line: float) -> float:
        """Solid lines side by side: each turns 90° twice into the next, a spacing over."""
        corner = jerk / math.sqrt(2)  # a 90° turn: the velocity changes by √2 × itself
        accel = params.infill_acceleration
        seconds = (line / _effective_speed(speed, line, accel, corner)
                   + spacing / _effective_speed(speed, spacing, accel, corner))
        return line / seconds

    def skin(speed: float) -> float:
        """Skins' average speed: lines across a slope's band, or spanning a level region."""
        band = min(v.band_mm, chord_mm) if v.band_mm > 0 else chord_mm
        return 1 / (v.banded / zigzag(speed, band) + (1 - v.banded) / zigzag(speed, chord_mm))

    top_share = 1 / max(params.top_solid_layers, 1)
    bridge, sparse = params.bridge_speed_mm_s, params.fill_density < 1
    bridge_share = top_share if params.top_solid_layers > 1 and sparse else 0.0
    first_share = v.first_layer / v.total if v.total > 0 else 0.0
    islands, holes, small = _loops(loops, height, side_mm2, small_holes_mm2, bodies)
    ext, per = params.external_perimeter_speed_mm_s, params.perimeter_speed_mm_s
    tiny = params.small_perimeter_speed_mm_s
    small_speed = perimeter(tiny, params.perimeter_acceleration)
    solid, top = params.solid_infill_speed_mm_s, params.top_solid_infill_speed_mm_s
    rates = (  # (volume mm³, feed rate, average speed mm/s)
        (v.external * (1 - small), ext, perimeter(ext, params.perimeter_acceleration)),
        (v.perimeters * (1 - small), per, perimeter(per, params.perimeter_acceleration)),
        ((v.external + v.perimeters) * small, tiny, small_speed),
        (v.bottom, solid, skin(solid)),
        # only the topmost skin layer is "top solid infill" (slow, for looks); the ones
        # under it are solid infill at its speed
        (v.top * top_share, top, skin(top)),
        # and the lowest, laid over sparse infill, is bridged (at the bridge speed)
        (v.top * bridge_share, bridge, skin(bridge)),
        (v.top * (1 - top_share - bridge_share), solid, skin(solid)),
        (v.infill - v.anchors, params.infill_speed_mm_s,
         lines(params.infill_speed_mm_s, chord_mm)),
        (v.anchors, params.infill_speed_mm_s, lines(params.infill_speed_mm_s, anchor_line)),
    )
    extruding = sum(vol * (1 - first_share) / (speed * section) for vol, _, speed in rates)
    plain = sum(vol * (1 - first_share) / (feed * section) for vol, feed, _ in rates)
    first = v.first_layer / (perimeter(params.first_layer_speed_mm_s,
                                       params.first_layer_acceleration) * section)
    travel = _effective_speed(params.travel_speed_mm_s, chord_mm, params.default_acceleration,
                              jerk)
    # Per layer the nozzle travels to every loop (each island's outline and each hole
    # through it), about a chord long; it retracts and lifts on the way from one loop to the
    # next (a travel inside one loop's region crosses no perimeter: PrusaSlicer's rule).
    loops_per_layer = islands + holes
    per_layer_travel = (loops_per_layer * chord_mm / travel
                        + max(loops_per_layer - 1, 0.0) * _retraction_s(params)) + (
        bodies * params.layer_overhead_s)
    # bodies stacked apart (a layer crosses fewer than one on average) leave layers empty:
    # the others carry the extrusion, and cooling judges them by that
    upper = max(layers - 1, 0) * min(islands, 1.0)
    lengths = sum(vol for vol, *_ in rates) * (1 - first_share) / section
    cooled = _cooled(extruding, plain, lengths, upper,
                     params.slowdown_below_layer_time_s - per_layer_travel,
                     params.min_print_speed_mm_s)
    return first + cooled + layers * min(islands, 1.0) * per_layer_travel


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
    islands, holes, _ = _loops(loops, height, wall_mm2 or 0.0, small_holes_mm2, bodies)
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
        seconds=round(_seconds(one, bbox_mm, params, bodies, chord, segment_mm, side, turns,
                               loops, small_holes_mm2) * copies
                      + skirt / (params.first_layer_speed_mm_s * _extrusion_spacing(params)
                                 * params.first_layer_height_mm), 1),
        cost=round(grams / 1000 * price_per_kg, 2),
    )
