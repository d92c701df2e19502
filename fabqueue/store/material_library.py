"""The built-in material library every new database starts with.

One source of truth: the filaments are the PrusaSlicer filament profiles
(``slicer_profiles/printers/filaments/*.ini``: density, cost per kg, nozzle and bed
temperatures) and the sheets are the laser library (``slicer_profiles/laser/*.toml``:
thickness, sheet size, price, cut/score/engrave settings). ``inventory.seed_materials``
adds the ones a database lacks after every migration; rows that exist (from the devices file
or the admin page) are never overwritten, so a site's own prices and names win.

Display names are English msgids (marked below) so pages show them in the reader's language.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fabqueue.core.findings import N_
from fabqueue.laser.materials import load_library
from fabqueue.store.material_doc import MaterialIn

PROFILES = Path(__file__).resolve().parents[2] / "slicer_profiles"

#: Translatable display names of the built-in materials (the laser files' ``name`` and the
#: filaments' common names). A name not listed here is shown as written.
NAMES = {
    "PLA": N_("PLA filament"),
    "PETG": N_("PETG filament"),
    "TPU": N_("TPU filament (flexible)"),
    "acrylic-3mm": N_("Cast acrylic 3 mm (opaque dark colours only with a diode laser)"),
    "cardboard": N_("Corrugated cardboard 3 mm"),
    "leather": N_("Vegetable-tanned leather 2 mm"),
    "mdf-3mm": N_("MDF 3 mm"),
    "paper": N_("Paper / card up to 300 g/m²"),
    "plywood-3mm": N_("Plywood 3 mm (birch)"),
    "plywood-4mm": N_("Plywood 4 mm (birch)"),
}


def _ini(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            out[key.strip()] = value.strip()
    return out


def _span(values: list[str]) -> tuple[float, float] | None:
    nums = [float(v) for v in values if v]
    return (min(nums), max(nums)) if nums else None


def filaments(folder: Path = PROFILES / "printers" / "filaments") -> list[MaterialIn]:
    out = []
    for path in sorted(folder.glob("*.ini")):
        ini = _ini(path)
        out.append(MaterialIn(
            id=path.stem, kind="filament", name=NAMES.get(path.stem, path.stem),
            density_g_cm3=float(ini["filament_density"]),
            price_per_kg=float(ini.get("filament_cost", 0)),
            nozzle_c=_span([ini.get("first_layer_temperature", ""),
                            ini.get("temperature", "")]),
            bed_c=_span([ini.get("first_layer_bed_temperature", ""),
                         ini.get("bed_temperature", "")]),
        ))
    return out


def sheets(folder: Path = PROFILES / "laser") -> list[MaterialIn]:
    return [MaterialIn(id=m.id, kind="sheet", name=NAMES.get(m.id, m.name),
                       thickness_mm=m.thickness_mm, sheet_mm=m.sheet_mm,
                       price_per_sheet=m.price_per_sheet, laser_material=m.id)
            for m in load_library(folder).values()]


def builtin() -> list[MaterialIn]:
    return filaments() + sheets()


@cache
def builtin_by_id() -> dict[str, MaterialIn]:
    """The library by id, read once per process (the files ship with the code)."""
    return {m.id: m for m in builtin()}
