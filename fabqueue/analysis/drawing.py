"""Analyse an uploaded SVG for the laser: what will be cut, scored, engraved, where, how long, cost.

``analyse_svg`` never raises for a bad file: refusals (hostile XML, too complex, nothing to cut)
become ``ok: False`` with findings a resident understands.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from fabqueue.core.findings import N_, Finding, Refused, finding
from fabqueue.core.specs import LaserSpec, MaterialSpec
from fabqueue.laser.colours import found_colours
from fabqueue.laser.gcode import estimate_seconds
from fabqueue.laser.materials import LaserMaterial, Operation
from fabqueue.laser.paths import ColourMap, Toolpath, ToolpathSet, toolpaths_from_drawing
from fabqueue.laser.planning import plan_toolpaths
from fabqueue.laser.svg import DEFAULT_MAX_BYTES, parse_svg

#: Used for the travel part of the estimate when no laser is given.
_DEFAULT_LASER = LaserSpec(id="default", site="", bed_mm=(1e9, 1e9))
_THUMB_COLOURS = {Operation.CUT: (220, 0, 0), Operation.SCORE: (0, 0, 220),
                  Operation.ENGRAVE: (0, 0, 0)}


def analyse_svg(
    path: Path,
    *,
    material: MaterialSpec | None,
    lasers: Sequence[LaserSpec],
    library: dict[str, LaserMaterial] | None,
    colours: ColourMap | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> dict[str, Any]:
    """Return a JSON-able report on the drawing (see the module docstring)."""
    report, _ = analyse_svg_toolpaths(path, material=material, lasers=lasers, library=library,
                                      colours=colours, max_bytes=max_bytes)
    return report


def analyse_for_job(
    path: Path,
    *,
    thumbnail: Path | None = None,
    material: MaterialSpec | None = None,
    lasers: Sequence[LaserSpec] = (),
    library: dict[str, LaserMaterial] | None = None,
    colours: ColourMap | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    **_other: Any,  # the analysis task passes one set of inputs for every kind of upload
) -> dict[str, Any]:
    """:func:`analyse_svg`, plus a PNG at ``thumbnail`` when there is something to draw."""
    report, toolpaths = analyse_svg_toolpaths(path, material=material, lasers=lasers,
                                              library=library, colours=colours,
                                              max_bytes=max_bytes)
    if thumbnail is not None and toolpaths is not None and (toolpaths.paths
                                                            or toolpaths.ignored):
        render_svg_thumbnail(toolpaths, thumbnail)
    return report


def analyse_svg_toolpaths(
    path: Path,
    *,
    material: MaterialSpec | None,
    lasers: Sequence[LaserSpec],
    library: dict[str, LaserMaterial] | None,
    colours: ColourMap | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> tuple[dict[str, Any], ToolpathSet | None]:
    """The report and the toolpaths it was made from (None when the file was refused)."""
    report: dict[str, Any] = {
        "ok": False, "format": "svg", "errors": [], "warnings": [], "size_mm": None,
        "page_mm": None, "operations": [], "cut_length_mm": 0.0, "score_length_mm": 0.0,
        "engrave_area_mm2": 0.0,
        "estimated_seconds": None, "cost": None, "fits": [],
    }
    laser_material, problem = _laser_material(material, library)
    if problem is not None:
        report["errors"].append(problem.to_dict())
    try:
        data = _read(path, max_bytes)
        drawing = parse_svg(data, max_bytes=max_bytes)
    except Refused as refused:
        report["errors"].append(refused.finding.to_dict())
        return report, None
    interval = laser_material.engrave_interval_mm if laser_material else 0.1
    toolpaths = toolpaths_from_drawing(drawing, colours, engrave_interval_mm=interval)
    report["page_mm"] = [round(v, 2) for v in drawing.page_mm]
    report["colours"] = found_colours(drawing, colours)
    report["warnings"] = [w.to_dict() for w in toolpaths.warnings]
    report["errors"].extend(e.to_dict() for e in toolpaths.errors)
    _ask_for_colours(report, colours)
    bbox = toolpaths.bbox()
    if bbox is not None:
        _describe(report, toolpaths, bbox, material, laser_material, lasers)
    report["ok"] = not report["errors"]
    return report, toolpaths


def _ask_for_colours(report: dict[str, Any], colours: ColourMap | None) -> None:
    """A drawing that only misses the site's colours is not unusable: until people have
    chosen what each colour does, it waits for that choice (``needs_choice``) instead of
    being refused. Once chosen, nothing to cut is refused with that reason."""
    if (colours is not None and colours.choice) or not report["colours"]:
        return
    codes = [e["code"] for e in report["errors"]]
    if "nothing_to_cut" in codes:
        report["errors"] = [e for e in report["errors"] if e["code"] != "nothing_to_cut"]
        report["needs_choice"] = True
        report["warnings"].append(finding("choose_colours", N_(
            "None of the drawing's colours is one the lab's convention cuts, scores or "
            "engraves: choose what the laser does with each colour.")).to_dict())


def _read(path: Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > max_bytes:  # refuse before reading a huge file into memory
            raise Refused("file_too_large", N_("The file is {size_mb} MB; the limit is "
                                               "{limit_mb} MB."),
                          size_mb=round(size / 1e6, 1), limit_mb=round(max_bytes / 1e6, 1))
        if size == 0:
            raise Refused("empty_file", N_("The file is empty."))
        return path.read_bytes()
    except OSError as exc:
        raise Refused("unreadable", N_("The file could not be read ({problem})."),
                      problem=type(exc).__name__) from exc


def _laser_material(
    material: MaterialSpec | None, library: dict[str, LaserMaterial] | None
) -> tuple[LaserMaterial | None, Finding | None]:
    if material is None or library is None:
        return None, None
    key = material.laser_material or material.id
    if key in library:
        return library[key], None
    return None, finding("unknown_material", N_(
        "There are no laser settings for the material {material}; staff must add it to the "
        "laser material library before this job can run."), material=key)


def _describe(
    report: dict[str, Any], toolpaths: ToolpathSet, bbox: tuple[float, float, float, float],
    material: MaterialSpec | None, laser_material: LaserMaterial | None,
    lasers: Sequence[LaserSpec],
) -> None:
    width, height = bbox[2] - bbox[0], bbox[3] - bbox[1]
    report["size_mm"] = [round(width, 2), round(height, 2)]
    report["bbox_mm"] = [round(v, 2) for v in bbox]
    report["operations"] = toolpaths.summary()
    for op in ("cut", "score"):
        report[f"{op}_length_mm"] = round(sum(
            r["length_mm"] for r in report["operations"] if r["operation"] == op), 1)
    report["engrave_area_mm2"] = round(sum(
        r["area_mm2"] for r in report["operations"] if "area_mm2" in r), 1)
    report["fits"] = _fitting_lasers(report, width, height, material, lasers)
    if laser_material is not None:
        chosen = next((laser for laser in lasers if laser.id in report["fits"]), None)
        plan = plan_toolpaths(toolpaths.paths)
        report["estimated_seconds"] = round(
            estimate_seconds(plan, laser_material, chosen or _DEFAULT_LASER), 1)
    report["cost"] = _cost(report, width, height, material, laser_material)


def _fitting_lasers(
    report: dict[str, Any], width: float, height: float, material: MaterialSpec | None,
    lasers: Sequence[LaserSpec],
) -> list[str]:
    """Lasers whose bed holds the drawing as drawn (no rotation: the G-code doesn't rotate)
    and that take the material. A laser listing no materials takes any."""
    big_enough = [laser for laser in lasers
                  if width <= laser.bed_mm[0] + 1e-6 and height <= laser.bed_mm[1] + 1e-6]
    fits = [laser.id for laser in big_enough
            if material is None or not laser.materials or material.id in laser.materials]
    if lasers and not big_enough:
        largest = max(lasers, key=lambda laser: laser.bed_mm[0] * laser.bed_mm[1])
        report["errors"].append(finding("too_big_for_lasers", N_(
            "The drawing is {width} × {height} mm; it does not fit on any laser (the largest "
            "bed is {bed_w} × {bed_h} mm)."), width=round(width, 1), height=round(height, 1),
            bed_w=largest.bed_mm[0], bed_h=largest.bed_mm[1]).to_dict())
    elif lasers and not fits and material is not None:
        report["errors"].append(finding("no_laser_for_material", N_(
            "No laser that the drawing fits on takes the material {material}."),
            material=material.id).to_dict())
    return fits


def _cost(
    report: dict[str, Any], width: float, height: float, material: MaterialSpec | None,
    laser_material: LaserMaterial | None,
) -> float | None:
    """Sheet price pro rata by the drawing's bounding-box area (not whole sheets): residents
    pay for the rectangle they use; the rest of the sheet goes back on the offcut shelf."""
    price = material.price_per_sheet if material else None
    sheet = material.sheet_mm if material else None
    if laser_material is not None:
        price = price if price is not None else laser_material.price_per_sheet
        sheet = sheet or laser_material.sheet_mm
    if price is None or not sheet:
        return None
    fits_sheet = (width <= sheet[0] and height <= sheet[1]) or (
        width <= sheet[1] and height <= sheet[0])
    if not fits_sheet:
        report["warnings"].append(finding("larger_than_sheet", N_(
            "The drawing ({width} × {height} mm) is larger than one sheet ({sheet_w} × "
            "{sheet_h} mm)."), width=round(width, 1), height=round(height, 1),
            sheet_w=sheet[0], sheet_h=sheet[1]).to_dict())
    return round(price * (width * height) / (sheet[0] * sheet[1]), 2)


def render_svg_thumbnail(
    toolpaths: ToolpathSet | Sequence[Toolpath], out: Path, size: int = 256
) -> Path:
    """A PNG of the job seen from above: red cut, blue score, black engrave, on white."""
    paths = toolpaths.paths if isinstance(toolpaths, ToolpathSet) else list(toolpaths)
    ignored = toolpaths.ignored if isinstance(toolpaths, ToolpathSet) else []
    image = Image.new("RGB", (size, size), "white")
    if paths or ignored:
        stacked = np.concatenate([p.points for p in paths] + list(ignored))
        lo, hi = stacked.min(axis=0), stacked.max(axis=0)
        margin = max(2, size // 32)
        scale = (size - 2 * margin) / max(float((hi - lo).max()), 1e-9)
        offset = (size - (hi - lo) * scale) / 2
        draw = ImageDraw.Draw(image)
        for points in ignored:  # shapes nothing is done with, pale: the drawing as a whole
            xy = (points - lo) * scale + offset
            xy[:, 1] = size - xy[:, 1]
            if len(xy) >= 2:
                draw.line([tuple(v) for v in xy.tolist()], fill=(170, 170, 170), width=1)
        order = (Operation.ENGRAVE, Operation.SCORE, Operation.CUT)  # cut lines drawn on top
        for op in order:
            chosen = [p for p in paths if p.operation is op]
            if op is Operation.ENGRAVE:
                # Hatch rows far finer than a pixel: a sample of them paints the same picture.
                chosen = chosen[::max(1, len(chosen) // (size * 40))]
            for path in chosen:
                xy = (path.points - lo) * scale + offset
                xy[:, 1] = size - xy[:, 1]  # machine y goes up, image rows go down
                coords = [tuple(v) for v in xy.tolist()]
                if path.closed:
                    coords.append(coords[0])
                draw.line(coords, fill=_THUMB_COLOURS[op], width=1)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out, format="PNG")
    return out
