"""Print time before slicing, as PrusaSlicer's own estimate would give it (pure; issue 20).

PrusaSlicer simulates every move: it accelerates from and slows to the corner speed its jerk
limit allows, so short moves never reach their feed rate. This model takes each feature's
extruded length at the average speed of its typical move: perimeters round the mesh's outline
joints by turning angle (``fabqueue.analysis.outline``), small loops at the small-perimeter
speed, infill and skin lines across the layer's region, a travel per loop and a retraction
per further loop, and PrusaSlicer's cooling slowdown of small layers (bench/RESULTS.md
"Estimate accuracy").
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from fabqueue.core.print_params import PrintParams, Volumes, extrusion_spacing

# Without the mesh's joints or segment length, perimeters run between full slow-downs a tenth
# of the region's mean chord (the G-code's perimeter moves on the samples; issue 20).
PERIMETER_LINE_SHARE = 0.1


# A joint turning less than this is two coplanar faces cut by the triangulation: PrusaSlicer
# merges the collinear points (gcode_resolution), so the outline has no joint there.
MIN_TURN_RAD = math.radians(1.0)


def perimeter_speed(speed: float, accel: float, jerk: float, outline_mm: float,
                     loops: float, turns: Sequence[tuple[float, float]],
                     height: float) -> float:
    """Average speed of a perimeter printed at ``speed`` round the mesh's outline joints.

    Per layer the outline (``outline_mm`` long, in ``loops`` closed loops) has, per turning
    angle θ, Σ z-extent ÷ height joints (``fabqueue.analysis.outline.outline_turns``). At a
    joint the velocity turns by 2·v·sin(θ/2); the planner keeps the largest speed whose
    change stays within the jerk, u = jerk ÷ (2 sin(θ/2)): a shallow joint costs nothing,
    a square corner slows to the jerk. Every joint starts a run of the mean spacing that
    accelerates from its corner speed and slows to it again (``effective_speed``); each
    loop's seam starts and ends at the jerk speed.
    """
    joints = [(crossings_mm / height, min(speed, jerk / (2 * math.sin(angle / 2))))
              for angle, crossings_mm in turns if angle >= MIN_TURN_RAD]
    count = sum(n for n, _ in joints) + loops
    if outline_mm <= 0 or count <= 0:
        return speed
    run = outline_mm / count
    seconds = loops * run / effective_speed(speed, run, accel, jerk) + sum(
        n * run / effective_speed(speed, run, accel, corner) for n, corner in joints)
    return outline_mm / seconds


def effective_speed(speed: float, line_mm: float, accel: float, jerk: float) -> float:
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
        return length / effective_speed(speed, length, accel, jerk) if length > 0 else 0.0

    pull = move(params.retract_length_mm, params.retract_speed_mm_s,
                params.retract_acceleration, 0.0)
    lift = move(params.retract_lift_mm, params.travel_speed_mm_s, params.z_acceleration,
                params.z_jerk_mm_s)
    return 2 * (pull + lift)


# PrusaSlicer prints a perimeter loop no longer than this (2π × 6.5 mm) at the small-perimeter
# speed: holes and thin parts, where the loop is printed slowly for accuracy.
SMALL_LOOP_RADIUS_MM = 6.5
SMALL_LOOP_MM = 2 * math.pi * SMALL_LOOP_RADIUS_MM


def loop_counts(loops: Sequence[tuple[float, float, int, bool]], height: float, side_mm2: float,
                small_holes_mm2: float, bodies: int,
                net_turn_mm: float | None = None) -> tuple[float, float, float]:
    """Per layer: islands crossed, holes crossed, and the share of the outline in small loops.

    With ``net_turn_mm`` (the outline's signed turning summed over the layers, 2π per outer
    loop less 2π per hole: ``fabqueue.analysis.outline.outline_turns``) a layer's holes are
    the islands it crosses less that, and islands beyond the bodies' are counted too (a
    hole across a wall splits it in the layers it crosses); otherwise every hole through a
    body (its genus) is taken to run its whole height.

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
    if net_turn_mm is not None:
        net = net_turn_mm / (2 * math.pi * height)
        islands, holes = max(islands, net), max(islands - net, 0.0)
    total = sum(h * outline for h, outline, *_ in loops) or side_mm2
    small = sum(h * outline for h, outline, n, alone in loops
                if alone and n == 0 and outline <= SMALL_LOOP_MM)
    if any(n for _, _, n, _ in loops):
        small += small_holes_mm2
    return islands, holes, min(small / total, 1.0) if total > 0 else 0.0


def print_seconds(v: Volumes, bbox_mm: tuple[float, float, float], params: PrintParams,
             bodies: int = 1, chord_mm: float = 10.0,
             segment_mm: float | None = None, side_mm2: float = 0.0,
             turns: Sequence[tuple[float, float]] = (),
             loops: Sequence[tuple[float, float, int, bool]] = (),
             small_holes_mm2: float = 0.0, net_turn_mm: float | None = None) -> float:
    """Extruded length per feature ÷ its acceleration-limited speed, per-layer travel, cooling.

    ``chord_mm`` is the mean chord of a layer's region (Cauchy: π × area ÷ outline, the
    same as π × volume ÷ side area): infill and skin lines span it (skins under slopes only
    their band). Each layer adds a travel per loop and a retraction per further loop; a layer
    quicker than ``slowdown_below_layer_time`` has its extrusion slowed as PrusaSlicer's
    cooling does.
    """
    section = extrusion_spacing(params) * params.layer_height_mm  # mm² per mm of line
    height = max(bbox_mm[2], params.layer_height_mm)
    layers = max(math.ceil(height / params.layer_height_mm - 1e-9), 1)
    spacing = extrusion_spacing(params)
    # Sparse infill lines span the region: on average its mean chord. Their ends are joined
    # by anchors along the perimeter as long as the gap between neighbouring lines of one
    # direction (grid: two directions, so 2 × spacing ÷ density).
    anchor_line = 2 * spacing / max(params.fill_density, 0.01)
    jerk = params.jerk_mm_s
    outline = side_mm2 / height

    def perimeter(speed: float, accel: float) -> float:
        """Average perimeter speed: round the mesh's joints, else runs of a fixed length."""
        if turns and outline > 0:
            return perimeter_speed(speed, accel, jerk, outline, bodies, turns, height)
        line = segment_mm if segment_mm else PERIMETER_LINE_SHARE * chord_mm
        return effective_speed(speed, line, accel, jerk)

    def lines(speed: float, line: float) -> float:
        return effective_speed(speed, line, params.infill_acceleration, jerk)

    def zigzag(speed: float, line: float) -> float:
        """Solid lines side by side: each turns 90° twice into the next, a spacing over."""
        corner = jerk / math.sqrt(2)  # a 90° turn: the velocity changes by √2 × itself
        accel = params.infill_acceleration
        seconds = (line / effective_speed(speed, line, accel, corner)
                   + spacing / effective_speed(speed, spacing, accel, corner))
        return line / seconds

    def skin(speed: float) -> float:
        """Skins' average speed: lines across a slope's band, or spanning a level region."""
        band = min(v.band_mm, chord_mm) if v.band_mm > 0 else chord_mm
        return 1 / (v.banded / zigzag(speed, band) + (1 - v.banded) / zigzag(speed, chord_mm))

    top_share = 1 / max(params.top_solid_layers, 1)
    bridge, sparse = params.bridge_speed_mm_s, params.fill_density < 1
    bridge_share = top_share if params.top_solid_layers > 1 and sparse else 0.0
    first_share = v.first_layer / v.total if v.total > 0 else 0.0
    islands, holes, small = loop_counts(loops, height, side_mm2, small_holes_mm2, bodies,
                                        net_turn_mm)
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
    travel = effective_speed(params.travel_speed_mm_s, chord_mm, params.default_acceleration,
                              jerk)
    # Per layer the nozzle travels to every loop (each island's outline and each hole in
    # it), and from that loop's perimeters across the inner ones to the infill or skin beside
    # it: two travels per loop, a chord long, the layer's first coming straight from the
    # layer change. Each crosses perimeters and is longer than retract_before_travel, so it
    # retracts and lifts (PrusaSlicer's G-code: 1.9-2.8 per layer on the one-loop busted and
    # cube, 15.5 on featuretype's ~7 loops).
    hops = max(2 * (islands + holes) - 1, 0.0)
    per_layer_travel = hops * (chord_mm / travel + _retraction_s(params)) + (
        bodies * params.layer_overhead_s)
    # bodies stacked apart (a layer crosses fewer than one on average) leave layers empty:
    # the others carry the extrusion, and cooling judges them by that
    upper = max(layers - 1, 0) * min(islands, 1.0)
    lengths = sum(vol for vol, *_ in rates) * (1 - first_share) / section
    cooled = _cooled(extruding, plain, lengths, upper,
                     params.slowdown_below_layer_time_s - per_layer_travel,
                     params.min_print_speed_mm_s)
    return first + cooled + layers * min(islands, 1.0) * per_layer_travel
