"""The G-code check (``core.gcode``) applied to a file and to one of our machines.

Used for staff uploads (analysis), for the program PrusaSlicer wrote and for the laser
programs FabQueue generates (before either is queued): nothing reaches a machine unchecked.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from fabqueue.core.findings import Finding
from fabqueue.core.gcode import MachineKind, MachineLimits, check_program
from fabqueue.core.gcode.rules import temperature_limit
from fabqueue.core.specs import LaserSpec, PrinterSpec

# When a material has no filament profile: no hotter than FabQueue's hottest profile would ask.
FALLBACK_TEMPERATURES = (250.0, 90.0)


def material_temperatures(profiles: object, material: str | None) -> tuple[float, float]:
    """(nozzle, bed) limits in °C for ``material`` from a ``slicing.profiles.ProfileSet``."""
    filaments = getattr(profiles, "filaments", {}) or {}
    chosen = [filaments[material]] if material in filaments else list(filaments.values())
    nozzle, bed = [], []
    for ini in chosen:
        values = {k: _number(ini.settings.get(k)) for k in (
            "temperature", "first_layer_temperature", "bed_temperature",
            "first_layer_bed_temperature")}
        nozzle += [v for k, v in values.items() if v is not None and "bed" not in k]
        bed += [v for k, v in values.items() if v is not None and "bed" in k]
    if not nozzle or not bed:
        return FALLBACK_TEMPERATURES
    return temperature_limit(*nozzle), temperature_limit(*bed)


def _number(raw: str | None) -> float | None:
    try:
        return float(str(raw).split(",")[0])
    except (TypeError, ValueError):
        return None


def printer_limits(printer: PrinterSpec, temperatures: tuple[float, float], *,
                   sliced: bool = False) -> MachineLimits:
    """``sliced``: the program is PrusaSlicer's from FabQueue's profiles, whose motion limits
    are allowed; staff G-code may not change settings that outlive the print."""
    return MachineLimits(MachineKind.PRINTER, tuple(printer.build_volume_mm),  # type: ignore[arg-type]
                         nozzle_max_c=temperatures[0], bed_max_c=temperatures[1],
                         sliced=sliced)


def laser_limits(laser: LaserSpec) -> MachineLimits:
    width, depth = laser.bed_mm
    return MachineLimits(MachineKind.LASER, (float(width), float(depth), 0.0),
                         max_power_s=laser.max_power_s)


def check_lines(lines: Iterable[str], limits: MachineLimits) -> Finding | None:
    return check_program(lines, limits)


def check_file(path: Path, limits: MachineLimits) -> Finding | None:
    """The first problem of the G-code file at ``path`` (read as a stream), or None."""
    with path.open("r", encoding="utf-8", errors="replace", newline=None) as handle:
        return check_program(handle, limits)
