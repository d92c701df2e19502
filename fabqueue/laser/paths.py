"""From coloured polylines to laser toolpaths: the colour convention, hatching, path checks."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from fabqueue.core.findings import N_, Finding, Refused, finding
from fabqueue.laser.materials import Operation
from fabqueue.laser.svg import Drawing, Polyline

_SELF_INTERSECTION_BUDGET = 50_000  # segments checked per drawing
#: Hatch line crossings above which engraving is refused (a 1 m² black square at 0.1 mm
#: needs 20 000); beyond this the memory and the job time are absurd.
MAX_HATCH_CROSSINGS = 2_000_000


IGNORE = "ignore"
#: What people may choose for a colour found in a drawing.
CHOICES = (Operation.CUT.value, Operation.SCORE.value, Operation.ENGRAVE.value, IGNORE)


@dataclass(frozen=True)
class ColourMap:
    """Which SVG paint means which operation; a site may configure its own.

    ``choice`` is the job's own choice, made by people for the colours the drawing uses:
    ``(("stroke:#000000", "cut"), ("fill:#00ff00", "ignore"), …)``. A paint it names
    follows the choice; any other paint follows the site's convention above.
    """

    cut_strokes: tuple[str, ...] = ("#ff0000",)
    score_strokes: tuple[str, ...] = ("#0000ff",)
    engrave_fills: tuple[str, ...] = ("#000000",)
    choice: tuple[tuple[str, str], ...] = ()

    def stroke_operation(self, colour: str | None) -> Operation | None:
        """The operation the site's convention gives a stroke of ``colour``."""
        if colour is None:
            return None
        colour = colour.lower()
        if colour in _lower(self.cut_strokes):
            return Operation.CUT
        if colour in _lower(self.score_strokes):
            return Operation.SCORE
        return None

    def engraves(self, fill: str | None) -> bool:
        return fill is not None and fill.lower() in _lower(self.engrave_fills)

    def convention(self, paint: str, colour: str) -> Operation | None:
        if paint == "stroke":
            return self.stroke_operation(colour)
        return Operation.ENGRAVE if self.engraves(colour) else None

    def chosen(self, paint: str, colour: str | None) -> str | None:
        """The job's choice for this paint: an operation's value, ``ignore``, or None."""
        if colour is None:
            return None
        return dict(self.choice).get(paint_key(paint, colour))

    def operation(self, paint: str, colour: str | None) -> Operation | None:
        """What the laser does with this paint: the job's choice, else the convention."""
        if colour is None:
            return None
        picked = self.chosen(paint, colour)
        if picked is not None:
            return None if picked == IGNORE else Operation(picked)
        return self.convention(paint, colour)

    def with_choice(self, choice: dict[str, str] | None) -> ColourMap:
        """This convention with a job's choice (unknown operations are dropped)."""
        pairs = tuple(sorted((k.lower(), v) for k, v in (choice or {}).items()
                             if v in CHOICES))
        return ColourMap(self.cut_strokes, self.score_strokes, self.engrave_fills, pairs)


def paint_key(paint: str, colour: str) -> str:
    """How a choice names a paint: ``stroke:#000000`` or ``fill:#00ff00``."""
    return f"{paint}:{colour.lower()}"


def _lower(colours: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(c.lower() for c in colours)


@dataclass(eq=False)
class Toolpath:
    """A path the laser follows with one operation's settings; points in mm, y up."""

    operation: Operation
    colour: str  # the SVG paint it came from, "#rrggbb"
    points: np.ndarray  # (n, 2)
    closed: bool

    @property
    def length_mm(self) -> float:
        return polyline_length(self.points, self.closed)


@dataclass
class ToolpathSet:
    paths: list[Toolpath]
    warnings: list[Finding] = field(default_factory=list)
    errors: list[Finding] = field(default_factory=list)
    engrave_interval_mm: float = 0.1
    ignored: list[np.ndarray] = field(default_factory=list)  # shapes no operation applies to

    def bbox(self) -> tuple[float, float, float, float] | None:
        """(xmin, ymin, xmax, ymax) of everything the laser will do, or None if empty."""
        if not self.paths:
            return None
        stacked = np.concatenate([p.points for p in self.paths])
        lo, hi = stacked.min(axis=0), stacked.max(axis=0)
        return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])

    def summary(self) -> list[dict[str, object]]:
        """Per (colour, operation): ``length_mm`` for cut/score, ``area_mm2`` for engrave."""
        totals: dict[tuple[str, Operation], float] = defaultdict(float)
        for path in self.paths:
            totals[(path.colour, path.operation)] += path.length_mm
        rows: list[dict[str, object]] = []
        for (colour, op), length in totals.items():
            row: dict[str, object] = {"colour": colour, "operation": op.value}
            if op is Operation.ENGRAVE:
                row["area_mm2"] = round(length * self.engrave_interval_mm, 1)
            else:
                row["length_mm"] = round(length, 1)
            rows.append(row)
        return rows


def polyline_length(points: np.ndarray, closed: bool) -> float:
    if len(points) < 2:
        return 0.0
    ring = np.vstack([points, points[:1]]) if closed else points
    return float(np.hypot(*np.diff(ring, axis=0).T).sum())


def toolpaths_from_drawing(
    drawing: Drawing, colours: ColourMap | None = None, *, engrave_interval_mm: float = 0.1
) -> ToolpathSet:
    """Sort a drawing's polylines into cut / score / engrave toolpaths with findings.

    Each shape's stroke and fill get an operation (the job's choice, else the convention):
    cut or score follow the outline; engrave hatches the inside of its closed outlines.
    Shapes with no operation are kept (``ignored``) for the picture of the drawing."""
    colours = colours or ColourMap()
    paths: list[Toolpath] = []
    ignored: list[np.ndarray] = []
    unknown: set[str] = set()
    fills: dict[str, list[list[np.ndarray]]] = defaultdict(list)
    by_element: dict[int, list[Polyline]] = defaultdict(list)
    for line in drawing.polylines:
        by_element[line.element].append(line)
    for lines in by_element.values():
        first = lines[0]
        used = False
        for paint, colour in (("fill", first.fill), ("stroke", first.stroke)):
            if colour is None or (paint == "fill" and _is_white(colour)
                                  and colours.chosen(paint, colour) is None):
                continue
            op = colours.operation(paint, colour)
            if op is None:
                if colours.chosen(paint, colour) is None:
                    unknown.add(colour.lower())
                continue
            used = True
            if op is Operation.ENGRAVE:
                fills[colour.lower()].append([p.points for p in lines
                                              if len(p.points) >= 3])
            else:
                paths.extend(Toolpath(op, colour.lower(), p.points, p.closed) for p in lines)
        if not used:
            ignored.extend(p.points for p in lines)
    errors: list[Finding] = []
    for colour, elements in fills.items():
        try:
            segments = hatch(elements, engrave_interval_mm)
        except Refused as refused:
            errors.append(refused.finding)
            continue
        paths.extend(Toolpath(Operation.ENGRAVE, colour, s, False) for s in segments)
    result = ToolpathSet(paths, list(drawing.warnings), errors, engrave_interval_mm, ignored)
    if unknown:
        result.warnings.append(finding("svg_unknown_colours", N_(
            "Lines in colours {colours} are ignored: use {cut} strokes to cut, {score} strokes "
            "to score and {engrave} fill to engrave."),
            colours=", ".join(sorted(unknown)), cut=", ".join(colours.cut_strokes),
            score=", ".join(colours.score_strokes), engrave=", ".join(colours.engrave_fills)))
    if not paths and not errors:
        if colours.choice:
            result.errors.append(finding("nothing_to_cut_chosen", N_(
                "After the colour choice the drawing has nothing to cut, score or engrave: "
                "choose an operation for at least one colour.")))
        else:
            result.errors.append(finding("nothing_to_cut", N_(
                "The drawing has nothing to cut, score or engrave in the laser colours "
                "({cut} cut, {score} score, {engrave} fill engrave)."),
                cut=", ".join(colours.cut_strokes), score=", ".join(colours.score_strokes),
                engrave=", ".join(colours.engrave_fills)))
    result.warnings.extend(_cut_line_warnings(paths))
    return result


def _is_white(colour: str) -> bool:
    # White fill is the usual page background or a "knock-out"; it is not worth a warning.
    return colour.lower() == "#ffffff"


def _cut_line_warnings(paths: list[Toolpath]) -> list[Finding]:
    cuts = [p for p in paths if p.operation is Operation.CUT]
    warnings: list[Finding] = []
    open_count = sum(1 for p in cuts if not p.closed)
    if open_count:
        warnings.append(finding("open_path", N_(
            "{count} cut line(s) are open (not closed shapes); they will be cut as drawn."),
            count=open_count))
    # The crossing test costs ~20 µs per segment; a budget keeps a huge drawing's analysis
    # bounded (a warning only, so shapes beyond the budget are simply not checked).
    crossing, budget = 0, _SELF_INTERSECTION_BUDGET
    for path in (p for p in cuts if p.closed and len(p.points) >= 4):
        budget -= len(path.points)
        if budget < 0:
            break
        crossing += self_intersects(path.points)
    if crossing:
        warnings.append(finding("self_intersecting", N_(
            "{count} cut shape(s) cross themselves; they will be cut as drawn."), count=crossing))
    return warnings


def self_intersects(ring: np.ndarray, max_segments: int = 20_000) -> bool:
    """Whether a closed ring crosses itself (proper crossings; shared neighbours don't count).

    Segments sorted by their left end are tested only against those whose x ranges overlap,
    so ordinary shapes cost about n log n. Rings longer than ``max_segments`` are not checked.
    """
    n = len(ring)
    if n < 4 or n > max_segments:
        return False
    a, b = ring, np.roll(ring, -1, axis=0)
    xmin, xmax = np.minimum(a[:, 0], b[:, 0]), np.maximum(a[:, 0], b[:, 0])
    ymin, ymax = np.minimum(a[:, 1], b[:, 1]), np.maximum(a[:, 1], b[:, 1])
    order = np.argsort(xmin, kind="stable")
    sorted_xmin = xmin[order]
    for i in range(n):
        stop = np.searchsorted(sorted_xmin, xmax[i], side="right")
        cand = order[:stop]
        cand = cand[(xmax[cand] >= xmin[i]) & (ymax[cand] >= ymin[i]) & (ymin[cand] <= ymax[i])]
        # Neighbours share an end point; a pair is tested once (j > i).
        cand = cand[(cand > i + 1) & ~((i == 0) & (cand == n - 1))]
        if cand.size and _segments_cross(a[i], b[i], a[cand], b[cand]).any():
            return True
    return False


def _segments_cross(p: np.ndarray, q: np.ndarray, r: np.ndarray, s: np.ndarray) -> np.ndarray:
    def orient(o: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return np.sign((u[..., 0] - o[..., 0]) * (v[..., 1] - o[..., 1])
                       - (u[..., 1] - o[..., 1]) * (v[..., 0] - o[..., 0]))

    d1, d2 = orient(r, s, p), orient(r, s, q)
    d3, d4 = orient(p, q, r), orient(p, q, s)
    return (d1 * d2 < 0) & (d3 * d4 < 0)


def hatch(
    elements: list[list[np.ndarray]], interval_mm: float, max_crossings: int = MAX_HATCH_CROSSINGS
) -> list[np.ndarray]:
    """Scanline hatching of filled shapes, even-odd within a shape, union across shapes.

    Returns 2-point segments in boustrophedon order (alternate rows reversed) so the head
    sweeps back and forth like a raster engraver. Scanlines sit at half-interval offsets so a
    shape's area ≈ total hatch length × interval.
    """
    crossings = sum(_crossing_count(rings, interval_mm) for rings in elements if rings)
    if crossings > max_crossings:
        raise Refused("engrave_too_large", N_(
            "The engraved area is too large to plan ({rows} hatch line crossings at "
            "{interval} mm; the limit is {limit}). Check the drawing's size."),
            rows=crossings, interval=interval_mm, limit=max_crossings)
    intervals = [iv for rings in elements if rings
                 for iv in [_scanline_intervals(rings, interval_mm)] if iv[0].size]
    if not intervals:
        return []
    rows = np.concatenate([iv[0] for iv in intervals])
    starts = np.concatenate([iv[1] for iv in intervals])
    ends = np.concatenate([iv[2] for iv in intervals])
    rows, starts, ends = _union_per_row(rows, starts, ends)
    segments: list[np.ndarray] = []
    # Spans are sorted by row then x: cut the arrays where the row changes.
    bounds = np.flatnonzero(np.diff(rows)) + 1
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(rows)], strict=True):
        row = int(rows[lo])
        y = (row + 0.5) * interval_mm
        pairs = list(zip(starts[lo:hi].tolist(), ends[lo:hi].tolist(), strict=True))
        if row % 2:
            pairs = [(e, s) for s, e in reversed(pairs)]
        segments.extend(np.array([[s, y], [e, y]]) for s, e in pairs)
    return segments


def _row_ranges(rings: list[np.ndarray], interval: float) -> tuple[np.ndarray, ...]:
    """Each edge's first row and row count. Row k sits at y = (k + 0.5) * interval; an edge
    covers rows with lo <= y < hi, so a vertex shared by two edges is counted once and every
    row crosses a ring an even number of times."""
    a = np.concatenate(rings)
    b = np.concatenate([np.roll(r, -1, axis=0) for r in rings])
    lo, hi = np.minimum(a[:, 1], b[:, 1]), np.maximum(a[:, 1], b[:, 1])
    k_first = np.ceil(lo / interval - 0.5).astype(np.int64)
    k_stop = np.ceil(hi / interval - 0.5).astype(np.int64)
    return a, b, k_first, np.maximum(k_stop - k_first, 0)


def _crossing_count(rings: list[np.ndarray], interval: float) -> int:
    return int(_row_ranges(rings, interval)[3].sum())


def _scanline_intervals(
    rings: list[np.ndarray], interval: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row index, start x, end x of the inside spans of one shape (even-odd rule)."""
    a, b, k_first, counts = _row_ranges(rings, interval)
    total = int(counts.sum())
    if total == 0:
        empty = np.empty(0)
        return empty.astype(np.int64), empty, empty
    edge = np.repeat(np.arange(len(a)), counts)
    offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    k = k_first[edge] + offsets
    y = (k + 0.5) * interval
    ax, ay, bx, by = a[edge, 0], a[edge, 1], b[edge, 0], b[edge, 1]
    x = ax + (y - ay) * (bx - ax) / (by - ay)
    order = np.lexsort((x, k))
    k, x = k[order], x[order]
    return k[0::2], x[0::2], x[1::2]


def _union_per_row(
    rows: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge overlapping spans on the same row (two black shapes overlapping engrave once)."""
    order = np.lexsort((starts, rows))
    rows, starts, ends = rows[order], starts[order], ends[order]
    merged_rows: list[int] = []
    merged_starts: list[float] = []
    merged_ends: list[float] = []
    for row, start, end in zip(rows.tolist(), starts.tolist(), ends.tolist(), strict=True):
        if merged_rows and merged_rows[-1] == row and start <= merged_ends[-1]:
            merged_ends[-1] = max(merged_ends[-1], end)
        else:
            merged_rows.append(row)
            merged_starts.append(start)
            merged_ends.append(end)
    return np.array(merged_rows), np.array(merged_starts), np.array(merged_ends)
