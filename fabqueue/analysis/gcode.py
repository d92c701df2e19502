"""G-code uploaded by staff: no slicing, but its moves must stay inside a printer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fabqueue.core.findings import N_, finding
from fabqueue.core.specs import PrinterSpec
from fabqueue.slicing.gcode_meta import check_bounds, parse_totals


def analyse_gcode(path: Path, *, printers: Sequence[PrinterSpec] = (),
                  **_other: Any) -> dict[str, Any]:
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
    for p in printers:
        problems = check_bounds(path, p.build_volume_mm)
        if problems:
            report["outside"][p.id] = problems
        else:
            report["fits"].append(p.id)
    if printers and not report["fits"]:
        first = next(iter(report["outside"].values()))
        report["errors"].append(finding("gcode_outside", N_(
            "The G-code moves outside every printer's build volume: {problems}"),
            problems="; ".join(first)).to_dict())
    report["ok"] = not report["errors"]
    return report
