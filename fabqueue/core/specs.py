"""Plain data the pure code works on: what a material and a machine are, without a database."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class MaterialSpec:
    id: str  # "PLA", "plywood-3mm"
    kind: str  # "filament" or "sheet"
    name: str = ""
    density_g_cm3: float | None = None  # filament
    price_per_kg: float | None = None  # filament, in the site's currency (EUR)
    price_per_sheet: float | None = None  # sheet stock
    sheet_mm: tuple[float, float] | None = None  # sheet size
    thickness_mm: float | None = None  # sheet stock
    laser_material: str | None = None  # key into slicer_profiles/laser/*.toml


@dataclass(frozen=True)
class PrinterSpec:
    id: str
    site: str
    build_volume_mm: tuple[float, float, float]
    materials: tuple[str, ...] = ()
    profile: str | None = None  # slicer_profiles/printers/<profile>*.ini


@dataclass(frozen=True)
class LaserSpec:
    id: str
    site: str
    bed_mm: tuple[float, float]
    materials: tuple[str, ...] = ()
    max_power_s: float = 1000.0  # GRBL $30
    max_speed_mm_min: float = 6000.0
    settings: dict[str, object] = field(default_factory=dict)
