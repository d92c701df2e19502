"""G-code uploaded by staff: no slicing, but every line must pass the machine check."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fabqueue.analysis.machine_check import FALLBACK_TEMPERATURES, check_file, printer_limits
from fabqueue.core.findings import N_, finding
from fabqueue.core.specs import PrinterSpec
from fabqueue.slicing.gcode_meta import parse_totals


def analyse_gcode(path: Path, *, printers: Sequence[PrinterSpec] = (),
                  temperatures: tuple[float, float] = FALLBACK_TEMPERATURES,
                  **_other: Any) -> dict[str, Any]:
    """``fits``: the printers whose check passed; ``outside``: each other printer's problem.

    ``temperatures`` are the material's (nozzle, bed) limits in °C."""
    report: dict[str, Any] = {"ok": False, "format": "gcode", "errors": [], "warnings": [],
                              "fits": [], "outside": {}}
    try:
        with path.open("rb") as f:
            head = f.read(4096)
        if b"\0" in head:
            raise ValueError("binary")
        totals = parse_totals(path)
    except (OSError, ValueError, UnicodeDecodeError):
        report["errors"].append(finding("unreadable_gcode", N_(
            "This is not a G-code text file. Export it again from the slicer.")).to_dict())
        return report
    report["estimated_seconds"] = totals.get("estimated_seconds")
    report["material_g"] = totals.get("filament_g")
    report["filament_m"] = (totals["filament_mm"] / 1000) if "filament_mm" in totals else None
    report["cost"] = totals.get("cost")
    problems = []
    seen: dict[object, object] = {}  # printers of one size share one pass over the file
    for p in printers:
        limits = printer_limits(p, temperatures)
        if limits not in seen:
            seen[limits] = check_file(path, limits)
        problem = seen[limits]
        if problem is None:
            report["fits"].append(p.id)
        else:
            report["outside"][p.id] = problem.render()  # type: ignore[attr-defined]
            problems.append(problem)
    if printers and not report["fits"]:
        report["errors"].append(problems[0].to_dict())  # type: ignore[attr-defined]
    report["ok"] = not report["errors"]
    return report
