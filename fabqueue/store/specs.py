"""Turn database rows into the plain specs the pure core works on."""

from __future__ import annotations

from fabqueue.core.specs import LaserSpec, MaterialSpec, PrinterSpec
from fabqueue.store.models import Device, Material


def material_spec(m: Material) -> MaterialSpec:
    sheet = (m.sheet_w_mm, m.sheet_h_mm) if m.sheet_w_mm and m.sheet_h_mm else None
    return MaterialSpec(
        id=m.id, kind=m.kind, name=m.name, density_g_cm3=m.density_g_cm3,
        price_per_kg=m.price_per_kg, price_per_sheet=m.price_per_sheet, sheet_mm=sheet,
        thickness_mm=m.thickness_mm, laser_material=m.laser_material or m.id,
    )


def printer_spec(d: Device) -> PrinterSpec:
    x, y, z = (float(v) for v in d.size_mm[:3])
    return PrinterSpec(id=d.id, site=d.site_id, build_volume_mm=(x, y, z),
                       materials=tuple(d.materials or ()), profile=d.profile)


def laser_spec(d: Device) -> LaserSpec:
    w, h = (float(v) for v in d.size_mm[:2])
    s = d.settings or {}
    return LaserSpec(id=d.id, site=d.site_id, bed_mm=(w, h), materials=tuple(d.materials or ()),
                     max_power_s=float(s.get("max_power_s", 1000)),
                     max_speed_mm_min=float(s.get("max_speed_mm_min", 6000)), settings=dict(s))
