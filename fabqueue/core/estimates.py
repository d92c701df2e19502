"""Pre-slicing estimates from a mesh's measures and a print profile's parameters (pure)."""

from __future__ import annotations

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
