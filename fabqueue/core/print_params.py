"""The print profile's parameters the pre-slicing estimates need, and the volumes per feature
they compute (pure; ``fabqueue.core.estimates`` for grams, ``fabqueue.core.print_time`` for
time).
"""

from __future__ import annotations

import math
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
class Volumes:
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


def extrusion_spacing(params: PrintParams) -> float:
    """Centre distance of neighbouring extrusions: the width minus the rounded edges' overlap."""
    return params.extrusion_width_mm - params.layer_height_mm * (1 - math.pi / 4)
