"""SVG to polylines in millimetres, with their colours (pure: takes bytes, returns data).

Guards run first on the raw bytes (size, DTD entities, a cheap complexity estimate), so a
hostile file is refused before any XML parser sees it. Then svgelements parses the document
(units, viewBox, transforms, groups, ``<use>``, shapes) and every curve is flattened within a
tolerance in millimetres. Output coordinates have y going up from the page's bottom-left corner,
like a machine bed.
"""

from __future__ import annotations

import io
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import numpy as np
import svgelements as se
from lxml import etree

from fabqueue.core.findings import N_, Finding, Refused, finding

#: CSS pixels (96 per inch) per mm, rounded as svgelements rounds its "mm" unit (3.7795296,
#: not 96 / 25.4) so that drawings in mm, the laser world's unit, come out exact; inch and px
#: drawings are then off by 5e-7 (0.05 µm per 100 mm).
PX_PER_MM = 3.7795296
DEFAULT_TOLERANCE_MM = 0.05
DEFAULT_MAX_BYTES = 100_000_000
#: Estimated path segments + elements above which a file is refused unparsed.
DEFAULT_MAX_SEGMENTS = 500_000
#: Flattened points above which a file is refused (a huge circle at 0.05 mm explodes).
DEFAULT_MAX_POINTS = 5_000_000
_MAX_POINTS_PER_SEGMENT = 20_000
_CLOSE_EPS_MM = 1e-3
#: Coordinates beyond 10 km are a broken file, not a job; refusing them keeps every later
#: step (hatch rows, sizes, G-code numbers) within sane integers and floats.
MAX_COORD_MM = 1e7
_MAX_COORD_PX = MAX_COORD_MM * PX_PER_MM
_SVG_NS = "http://www.w3.org/2000/svg"
_TEMPLATE_TAGS = (b"symbol", b"marker", b"mask")

_LENGTH = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([a-zA-Z%]*)\s*$")
_UNITS_PX = {"": 1.0, "px": 1.0, "mm": PX_PER_MM, "cm": 10 * PX_PER_MM, "in": 96.0,
             "pt": 96.0 / 72, "pc": 16.0, "q": PX_PER_MM / 4}


@dataclass(eq=False)
class Polyline:
    """One flattened subpath in mm. ``element`` groups the subpaths of one SVG shape (fill)."""

    points: np.ndarray  # shape (n, 2), mm, y up; a closed one doesn't repeat its first point
    stroke: str | None  # "#rrggbb" or None
    fill: str | None
    closed: bool
    element: int


@dataclass
class Drawing:
    polylines: list[Polyline]
    page_mm: tuple[float, float]
    warnings: list[Finding] = field(default_factory=list)


def parse_svg(
    data: bytes,
    *,
    tolerance_mm: float = DEFAULT_TOLERANCE_MM,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_segments: int = DEFAULT_MAX_SEGMENTS,
    max_points: int = DEFAULT_MAX_POINTS,
) -> Drawing:
    """Parse SVG bytes into polylines; raise :class:`Refused` for hostile or unreadable files."""
    guard_svg(data, max_bytes=max_bytes, max_segments=max_segments)
    warnings: list[Finding] = []
    root = _root_attributes(data)
    width_px, height_px, size_known = _page_size(root, warnings)
    try:
        svg = se.SVG.parse(io.BytesIO(_templates_into_defs(data)), reify=True, ppi=96.0,
                           width=width_px or None, height=height_px or None)
    except Exception as exc:  # svgelements raises many kinds on malformed input
        raise Refused("svg_unreadable", N_("The drawing could not be read as SVG: {reason}"),
                      reason=str(exc)[:200]) from exc
    flattener = _Flattener(tolerance_mm * PX_PER_MM, max_points)
    texts = images = 0
    raw: list[tuple[np.ndarray, str | None, str | None, bool, int]] = []
    for index, element in enumerate(svg.elements()):
        if isinstance(element, se.Text):
            texts += 1
        elif isinstance(element, se.Image):
            images += 1
        elif isinstance(element, se.Shape):
            stroke, fill = _hex(element.stroke), _hex(element.fill)
            try:
                subpaths = flattener.subpaths(abs(se.Path(element)))
            except (ValueError, OverflowError, ZeroDivisionError) as exc:  # inf/NaN numbers
                raise _out_of_range() from exc
            for points, closed in subpaths:
                if not np.isfinite(points).all() or np.abs(points).max() > _MAX_COORD_PX:
                    raise _out_of_range()
                raw.append((points, stroke, fill, closed, index))
    if texts:
        warnings.append(finding("svg_text", N_(
            "The drawing has {count} text element(s) that are not converted to paths; they will "
            "not be cut or engraved. Convert text to paths first (Inkscape: Path > Object to "
            "Path)."), count=texts))
    if images:
        warnings.append(finding("svg_image", N_(
            "The drawing has {count} embedded picture(s); pictures are not engraved or cut. "
            "Trace them to vector shapes first."), count=images))
    if not size_known:
        width_px, height_px = _size_from_content(raw, warnings)
    page_mm = (width_px / PX_PER_MM, height_px / PX_PER_MM)
    polylines = [
        Polyline(_to_machine(points, page_mm[1]), stroke, fill, closed, element)
        for points, stroke, fill, closed, element in raw
    ]
    return Drawing(polylines, page_mm, warnings)


def _out_of_range() -> Refused:
    return Refused("svg_out_of_range", N_(
        "The drawing has coordinates that are not numbers or lie more than {limit_km} km from "
        "the origin; check its size and units."), limit_km=round(MAX_COORD_MM / 1e6))


def _templates_into_defs(data: bytes) -> bytes:
    """Wrap ``<symbol>``, ``<marker>`` and ``<mask>`` outside ``<defs>`` in a ``<defs>``.

    They are templates, drawn only where used, but svgelements draws their content in place
    too (at the origin): that would cut a stray copy. Runs after the guards refused entities.
    """
    if not any(b"<" + tag in data or b":" + tag in data for tag in _TEMPLATE_TAGS):
        return data
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        return data  # svgelements reports the syntax error in its own words
    loose = [el for el in root.iter() if isinstance(el.tag, str)
             and etree.QName(el).localname.encode() in _TEMPLATE_TAGS
             and not any(etree.QName(a).localname == "defs" for a in el.iterancestors())]
    for element in loose:
        parent = element.getparent()
        if parent is None:
            continue
        defs = etree.Element(f"{{{_SVG_NS}}}defs")
        parent.insert(parent.index(element), defs)
        defs.append(element)  # moves it
    return etree.tostring(root) if loose else data


def guard_svg(data: bytes, *, max_bytes: int, max_segments: int) -> None:
    """Refuse hostile or oversized SVG bytes before parsing (cheap checks on the raw text)."""
    if len(data) > max_bytes:
        raise Refused("file_too_large", N_(
            "The file is {size_mb} MB; the limit is {limit_mb} MB."),
            size_mb=round(len(data) / 1e6, 1), limit_mb=round(max_bytes / 1e6, 1))
    if data[:2] == b"\x1f\x8b":
        raise Refused("svg_compressed", N_(
            "Compressed SVG (.svgz) is not accepted; save the drawing as plain SVG."))
    if b"\x00" in data[:1024]:
        raise Refused("svg_encoding", N_(
            "The drawing is not saved as UTF-8 text; save it as plain SVG (UTF-8)."))
    # Entities are how XXE (external files) and "billion laughs" (exponential expansion)
    # attacks work; drawing programs don't need them, so any DTD declaring one is refused.
    if b"<!DOCTYPE" in data and (b"<!ENTITY" in data or b"SYSTEM" in _doctype(data)):
        raise Refused("svg_entities", N_(
            "The drawing declares XML entities (<!ENTITY> in a <!DOCTYPE>), which can hide an "
            "attack; it was refused. Export it again as plain SVG."))
    estimate = estimate_segments(data)
    if estimate > max_segments:
        raise Refused("svg_too_complex", N_(
            "The drawing has about {count} path segments; the limit is {limit}. Simplify it "
            "(fewer nodes) or split it into several jobs."), count=estimate, limit=max_segments)


def estimate_segments(data: bytes, chunk: int = 1 << 23) -> int:
    """Upper-bound-ish count of segments: elements plus numbers / 2 (one pair per vertex).

    Counts runs of digits and dots with numpy in chunks: linear, ~50 ms for 10 MB, and it
    needs no parse, so a million-segment file is refused before any XML work.
    """
    elements = data.count(b"<")
    runs = 0
    previous = False
    for start in range(0, len(data), chunk):
        arr = np.frombuffer(data, dtype=np.uint8, count=min(chunk, len(data) - start),
                            offset=start)
        numeric = ((arr >= 48) & (arr <= 57)) | (arr == 46)
        if numeric.size:
            runs += int(np.count_nonzero(numeric[1:] & ~numeric[:-1]))
            runs += int(numeric[0] and not previous)
            previous = bool(numeric[-1])
    return elements + runs // 2


def _doctype(data: bytes) -> bytes:
    start = data.find(b"<!DOCTYPE")
    end = data.find(b">", start)
    return data[start:end if end >= 0 else len(data)]


def _root_attributes(data: bytes) -> dict[str, str]:
    """The root element's attributes, read with the stdlib parser up to the first tag only."""
    try:
        for _event, element in ET.iterparse(io.BytesIO(data), events=("start",)):
            if not element.tag.endswith("svg"):
                raise Refused("svg_not_svg", N_("The file is XML but not an SVG drawing."))
            return dict(element.attrib)
    except ET.ParseError as exc:
        raise Refused("svg_unreadable", N_("The drawing could not be read as SVG: {reason}"),
                      reason=str(exc)[:200]) from exc
    raise Refused("svg_unreadable", N_("The drawing could not be read as SVG: {reason}"),
                  reason="empty document")


def parse_length(text: str | None) -> tuple[float, str] | None:
    """``"100mm"`` → ``(100.0, "mm")``; None for a missing, percent or unknown-unit length."""
    if text is None:
        return None
    match = _LENGTH.match(text)
    if not match:
        return None
    unit = match.group(2).lower()
    if unit not in _UNITS_PX:
        return None
    return float(match.group(1)), unit


def _page_size(root: dict[str, str], warnings: list[Finding]) -> tuple[float, float, bool]:
    """Page size in px and whether it is known; warns when units or size had to be assumed."""
    width, height = parse_length(root.get("width")), parse_length(root.get("height"))
    viewbox = _viewbox(root.get("viewBox"))
    if width and height:
        w_px, h_px = width[0] * _UNITS_PX[width[1]], height[0] * _UNITS_PX[height[1]]
        if "" in (width[1], height[1]):
            warnings.append(finding("svg_units_assumed", N_(
                "The drawing gives its size without units; it was read as pixels at 96 per inch "
                "({width_mm} × {height_mm} mm). Check the size, or save with mm units."),
                width_mm=round(w_px / PX_PER_MM, 1), height_mm=round(h_px / PX_PER_MM, 1)))
        return w_px, h_px, True
    if viewbox:
        warnings.append(finding("svg_units_assumed", N_(
            "The drawing gives its size without units; it was read as pixels at 96 per inch "
            "({width_mm} × {height_mm} mm). Check the size, or save with mm units."),
            width_mm=round(viewbox[2] / PX_PER_MM, 1), height_mm=round(viewbox[3] / PX_PER_MM, 1)))
        return viewbox[2], viewbox[3], True
    return 0.0, 0.0, False


def _viewbox(text: str | None) -> tuple[float, float, float, float] | None:
    if not text:
        return None
    try:
        values = [float(v) for v in re.split(r"[\s,]+", text.strip())]
    except ValueError:
        return None
    if len(values) != 4 or values[2] <= 0 or values[3] <= 0:
        return None
    return values[0], values[1], values[2], values[3]


def _size_from_content(raw: list, warnings: list[Finding]) -> tuple[float, float]:
    if raw:
        stacked = np.concatenate([points for points, *_ in raw])
        w_px, h_px = (float(v) for v in np.maximum(stacked.max(axis=0), 0.0))
    else:
        w_px = h_px = 0.0
    warnings.append(finding("svg_size_missing", N_(
        "The drawing has no width, height or viewBox; its size was taken from its content "
        "({width_mm} × {height_mm} mm) in pixels at 96 per inch."),
        width_mm=round(w_px / PX_PER_MM, 1), height_mm=round(h_px / PX_PER_MM, 1)))
    return w_px, h_px


def _to_machine(points_px: np.ndarray, page_height_mm: float) -> np.ndarray:
    mm = points_px / PX_PER_MM
    mm[:, 1] = page_height_mm - mm[:, 1]
    return mm


def _hex(colour: se.Color | None) -> str | None:
    """``#rrggbb`` for a visible paint, None for none or fully transparent."""
    if colour is None or colour.value is None or colour.alpha == 0:
        return None
    return f"#{colour.red:02x}{colour.green:02x}{colour.blue:02x}"


class _Flattener:
    """Turns svgelements path segments into point arrays within a chord tolerance (px)."""

    def __init__(self, tolerance_px: float, max_points: int) -> None:
        self.tol = tolerance_px
        self.limit = max_points
        self.budget = max_points

    def subpaths(self, path: se.Path) -> list[tuple[np.ndarray, bool]]:
        result: list[tuple[np.ndarray, bool]] = []
        chunks: list[np.ndarray] = []
        closed = False

        def finish() -> None:
            if chunks:
                points = np.concatenate(chunks)
                if len(points) >= 2:
                    result.append(_close(points, closed))

        for segment in path:
            if isinstance(segment, se.Move):
                finish()
                chunks, closed = [np.array([_xy(segment.end)])], False
                continue
            if not chunks:  # a path not starting with a move: start where the segment does
                chunks = [np.array([_xy(segment.start)])]
            if isinstance(segment, se.Close):
                chunks.append(np.array([_xy(segment.end)]))
                closed = True
                continue
            new = self._segment_points(segment)
            self.budget -= len(new)
            if self.budget < 0:
                raise Refused("svg_too_complex", N_(
                    "The drawing has too many curve points once flattened (over {limit}); "
                    "simplify it or check its size."), limit=self.limit)
            chunks.append(new)
        finish()
        return result

    def _segment_points(self, segment: se.PathSegment) -> np.ndarray:
        """Points after the segment's start, up to and including its end."""
        if isinstance(segment, se.Line):
            return np.array([_xy(segment.end)])
        if isinstance(segment, se.CubicBezier):
            p = np.array([_xy(segment.start), _xy(segment.control1),
                          _xy(segment.control2), _xy(segment.end)])
            # Uniform subdivision error <= max|B''| / (8 n^2) and |B''| <= 6 max|second diff|.
            second = max(np.hypot(*(p[0] - 2 * p[1] + p[2])), np.hypot(*(p[1] - 2 * p[2] + p[3])))
            t = self._params(math.sqrt(0.75 * second / self.tol))
            mt = 1 - t
            return ((mt**3)[:, None] * p[0] + (3 * mt * mt * t)[:, None] * p[1]
                    + (3 * mt * t * t)[:, None] * p[2] + (t**3)[:, None] * p[3])
        if isinstance(segment, se.QuadraticBezier):
            p = np.array([_xy(segment.start), _xy(segment.control), _xy(segment.end)])
            second = np.hypot(*(p[0] - 2 * p[1] + p[2]))
            t = self._params(math.sqrt(second / (4 * self.tol)))
            mt = 1 - t
            return ((mt * mt)[:, None] * p[0] + (2 * mt * t)[:, None] * p[1]
                    + (t * t)[:, None] * p[2])
        if isinstance(segment, se.Arc):
            # rx, ry of a transformed arc are conjugate semi-diameters: hypot bounds the radius.
            radius = math.hypot(segment.rx or 0.0, segment.ry or 0.0)
            sweep = abs(segment.sweep or 0.0)
            if radius <= self.tol or sweep == 0:
                return np.array([_xy(segment.end)])
            step = 2 * math.acos(1 - self.tol / radius)
            t = self._params(sweep / step)
            points = np.asarray(segment.npoint(t), dtype=float)
            points[-1] = _xy(segment.end)
            return points
        return np.array([_xy(segment.end)])  # unknown segment kind: keep its end point

    @staticmethod
    def _params(pieces: float) -> np.ndarray:
        n = min(max(1, math.ceil(pieces)), _MAX_POINTS_PER_SEGMENT)
        return np.linspace(0.0, 1.0, n + 1)[1:]


def _xy(point: se.Point | None) -> tuple[float, float]:
    if point is None:
        return (0.0, 0.0)
    return (float(point.x), float(point.y))


def _close(points: np.ndarray, closed: bool) -> tuple[np.ndarray, bool]:
    """Drop the repeated end point of a closed ring; a ring drawn back to its start is closed."""
    if len(points) >= 3 and np.hypot(*(points[0] - points[-1])) < _CLOSE_EPS_MM * PX_PER_MM:
        return points[:-1], True
    return points, closed and len(points) >= 3
