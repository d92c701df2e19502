"""The laser material library: one TOML file per material in ``slicer_profiles/laser/``.

Each file names the material (``id``, ``name``), its stock (``thickness_mm``, ``sheet_mm``,
``price_per_sheet``) and one table per operation (``[cut]``, ``[score]``, ``[engrave]``) with
``speed_mm_min``, ``power_pct`` (of the laser's maximum, GRBL ``$30``), ``passes`` and
``air_assist``; ``[engrave]`` adds ``line_interval_mm``. Reading files is the only I/O here.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any


class Operation(StrEnum):
    """What the laser does along a path, in the order a job runs them."""

    ENGRAVE = "engrave"
    SCORE = "score"
    CUT = "cut"


#: Engrave first (the sheet is still flat and whole), then score, then cut.
OPERATION_ORDER: tuple[Operation, ...] = (Operation.ENGRAVE, Operation.SCORE, Operation.CUT)


class LibraryError(ValueError):
    """A material file that can't be used; the message names the file and the key."""


class UnknownMaterial(KeyError):
    """A job asks for a material the library doesn't have (shown to staff at approval)."""

    def __init__(self, material_id: str) -> None:
        super().__init__(material_id)
        self.material_id = material_id

    def __str__(self) -> str:
        return f"no laser settings for material {self.material_id!r}"


@dataclass(frozen=True)
class LaserOperation:
    speed_mm_min: float
    power_pct: float  # 0..100 of the laser's maximum power
    passes: int = 1
    air_assist: bool = False
    line_interval_mm: float | None = None  # engrave only: distance between hatch lines


@dataclass(frozen=True)
class LaserMaterial:
    id: str
    name: str
    thickness_mm: float
    sheet_mm: tuple[float, float]
    price_per_sheet: float
    operations: dict[Operation, LaserOperation]

    def operation(self, op: Operation | str) -> LaserOperation:
        return self.operations[Operation(op)]

    @property
    def engrave_interval_mm(self) -> float:
        return self.operations[Operation.ENGRAVE].line_interval_mm or 0.1


def get_material(library: dict[str, LaserMaterial], material_id: str) -> LaserMaterial:
    """The library's entry for ``material_id`` or :class:`UnknownMaterial`."""
    try:
        return library[material_id]
    except KeyError:
        raise UnknownMaterial(material_id) from None


def load_library(folder: Path) -> dict[str, LaserMaterial]:
    """Read every ``*.toml`` in ``folder``; raise :class:`LibraryError` on the first bad file."""
    library: dict[str, LaserMaterial] = {}
    for path in sorted(folder.glob("*.toml")):
        material = load_material(path)
        if material.id in library:
            raise LibraryError(f"{path.name}: material id {material.id!r} is defined twice")
        library[material.id] = material
    return library


def load_material(path: Path) -> LaserMaterial:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise LibraryError(f"{path.name}: not valid TOML: {exc}") from exc
    return parse_material(data, source=path.name)


def parse_material(data: dict[str, Any], *, source: str) -> LaserMaterial:
    """Validate one material's table; errors read ``<source>: <key>: <problem>``."""
    reader = _Reader(source)
    sheet = reader.get(data, "sheet_mm", list)
    if len(sheet) != 2:
        raise LibraryError(f"{source}: sheet_mm: expected [width, height] in mm")
    sheet_mm = (
        reader.positive(sheet[0], "sheet_mm[0]"),
        reader.positive(sheet[1], "sheet_mm[1]"),
    )
    operations = {op: _parse_operation(reader, data, op) for op in Operation}
    return LaserMaterial(
        id=reader.get(data, "id", str),
        name=reader.get(data, "name", str),
        thickness_mm=reader.positive(reader.get(data, "thickness_mm", float), "thickness_mm"),
        sheet_mm=sheet_mm,
        price_per_sheet=reader.non_negative(
            reader.get(data, "price_per_sheet", float), "price_per_sheet"
        ),
        operations=operations,
    )


def _parse_operation(reader: _Reader, data: dict[str, Any], op: Operation) -> LaserOperation:
    table = reader.get(data, op.value, dict)
    key = op.value
    power = reader.get(table, "power_pct", float, prefix=key)
    if not 0 <= power <= 100:
        raise LibraryError(f"{reader.source}: {key}.power_pct: {power} is not within 0..100")
    passes = reader.get(table, "passes", int, prefix=key)
    if passes < 1:
        raise LibraryError(f"{reader.source}: {key}.passes: must be at least 1")
    interval = None
    if op is Operation.ENGRAVE:
        interval = reader.positive(
            reader.get(table, "line_interval_mm", float, prefix=key), f"{key}.line_interval_mm"
        )
    return LaserOperation(
        speed_mm_min=reader.positive(
            reader.get(table, "speed_mm_min", float, prefix=key), f"{key}.speed_mm_min"
        ),
        power_pct=power,
        passes=passes,
        air_assist=reader.get(table, "air_assist", bool, prefix=key),
        line_interval_mm=interval,
    )


@dataclass(frozen=True)
class _Reader:
    """Typed look-ups whose errors name the file and the key."""

    source: str

    def get(self, table: dict[str, Any], key: str, kind: type, *, prefix: str = "") -> Any:
        name = f"{prefix}.{key}" if prefix else key
        if key not in table:
            raise LibraryError(f"{self.source}: {name}: missing")
        value = table[key]
        # TOML ints are fine where a float is wanted; bools are ints in Python, so refuse them.
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
            raise LibraryError(
                f"{self.source}: {name}: expected {kind.__name__}, got {type(value).__name__}"
            )
        return value

    def positive(self, value: Any, name: str) -> float:
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise LibraryError(f"{self.source}: {name}: must be a number above 0")
        return float(value)

    def non_negative(self, value: float, name: str) -> float:
        if value < 0:
            raise LibraryError(f"{self.source}: {name}: must not be negative")
        return value
