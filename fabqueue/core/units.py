"""Guess the unit a mesh was drawn in from its size (pure).

STL has no units; slicers read millimetres. A 2 mm bracket was almost certainly drawn in
inches (or centimetres): the guess only suggests a scale, the resident decides.
"""

from __future__ import annotations

from dataclasses import dataclass

MM_PER = {"mm": 1.0, "cm": 10.0, "inch": 25.4, "m": 1000.0}

#: Below this longest side (mm) a part is suspicious: smaller than a printed nozzle test.
_SMALL_MM = 8.0


@dataclass(frozen=True)
class UnitsGuess:
    unit: str  # "mm", "cm", "inch" or "m"
    scale: float  # multiply the model by this to get millimetres


def _roundness(dims: tuple[float, ...], step: float) -> int:
    """How many of the sizes are whole multiples of ``step`` (to 0.1%)."""
    return sum(1 for d in dims if d > 0 and abs(d / step - round(d / step)) < 1e-3 * d / step)


def guess_units(bbox_mm: tuple[float, float, float]) -> UnitsGuess:
    """Return the likely drawing unit of a model whose numbers were read as millimetres.

    Parts whose longest side is 8 mm or more are taken as millimetres. Smaller ones are
    inches unless their sides are whole millimetres once read as centimetres (0.1 cm steps)
    but not sixteenths of an inch; under 0.5 units the drawing was probably in metres.
    """
    longest = max(bbox_mm)
    if longest <= 0 or longest >= _SMALL_MM:
        return UnitsGuess("mm", 1.0)
    if longest < 0.5:
        return UnitsGuess("m", MM_PER["m"])
    dims = tuple(d for d in bbox_mm if d > 0)
    if _roundness(dims, 0.1) > _roundness(dims, 1 / 16):
        return UnitsGuess("cm", MM_PER["cm"])
    return UnitsGuess("inch", MM_PER["inch"])
