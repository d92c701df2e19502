"""SVG parsing: units, viewBox, transforms, shapes flattened within tolerance, guards."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fabqueue.core.findings import Refused
from fabqueue.laser.svg import estimate_segments, parse_length, parse_svg

TOL = 0.05


def svg(body: str, size: str = 'width="100mm" height="100mm" viewBox="0 0 100 100"') -> bytes:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" '
            f'xmlns:xlink="http://www.w3.org/1999/xlink" {size}>{body}</svg>').encode()


def bbox(points: np.ndarray) -> list[float]:
    return [round(float(v), 3) for v in (*points.min(axis=0), *points.max(axis=0))]


def ring_length(points: np.ndarray) -> float:
    closed = np.vstack([points, points[:1]])
    return float(np.hypot(*np.diff(closed, axis=0).T).sum())


def codes(drawing) -> set[str]:
    return {w.code for w in drawing.warnings}


@pytest.mark.parametrize(("size", "expected_mm"), [
    ('width="50mm" height="20mm"', (50.0, 20.0)),
    ('width="5cm" height="2cm"', (50.0, 20.0)),
    ('width="2in" height="1in"', (50.8, 25.4)),
    ('width="72pt" height="36pt"', (25.4, 12.7)),
    ('width="96px" height="48px"', (25.4, 12.7)),
])
def test_page_units(size: str, expected_mm: tuple[float, float]) -> None:
    drawing = parse_svg(svg('<path d="M1 1 L2 2" stroke="red"/>', size))
    assert drawing.page_mm == pytest.approx(expected_mm, abs=1e-4)
    assert "svg_units_assumed" not in codes(drawing)


def test_viewbox_scales_user_units_to_the_page() -> None:
    # 200 user units across a 100 mm page: a 200-unit line is 100 mm long.
    drawing = parse_svg(svg('<path d="M0 0 H200" stroke="red"/>',
                            'width="100mm" height="50mm" viewBox="0 0 200 100"'))
    (line,) = drawing.polylines
    assert bbox(line.points) == [0.0, 50.0, 100.0, 50.0]


def test_y_axis_points_up_from_the_bottom_left() -> None:
    drawing = parse_svg(svg('<path d="M10 10 L10 30" stroke="red"/>'))
    (line,) = drawing.polylines
    # SVG y=10 (near the top) is 90 mm up from the bottom of a 100 mm page.
    assert line.points[0].tolist() == pytest.approx([10, 90])
    assert line.points[1].tolist() == pytest.approx([10, 70])


def test_unitless_size_is_read_as_96_px_per_inch_with_a_warning() -> None:
    drawing = parse_svg(svg('<path d="M0 0 H96" stroke="red"/>', 'width="96" height="96"'))
    assert drawing.page_mm == pytest.approx((25.4, 25.4))
    assert bbox(drawing.polylines[0].points)[2] == pytest.approx(25.4)
    assert "svg_units_assumed" in codes(drawing)


def test_no_size_at_all_takes_the_size_from_the_content_with_a_warning() -> None:
    drawing = parse_svg(svg('<path d="M0 0 H192 V96" stroke="red" fill="none"/>', ""))
    assert drawing.page_mm == pytest.approx((50.8, 25.4))
    assert "svg_size_missing" in codes(drawing)


def test_transforms_groups_and_use_are_applied() -> None:
    body = ('<defs><rect id="r" width="10" height="10" stroke="red" fill="none"/></defs>'
            '<g transform="translate(20,0)"><g transform="scale(2)">'
            '<use xlink:href="#r" x="5" y="5"/></g></g>')
    (square,) = parse_svg(svg(body)).polylines
    # use at (5,5) scaled by 2 → 10..30, then shifted by 20 → x 30..50; y flipped on 100 mm.
    assert bbox(square.points) == [30.0, 70.0, 50.0, 90.0]
    assert square.closed and square.stroke == "#ff0000" and square.fill is None


def test_circle_is_flattened_within_tolerance() -> None:
    (circle,) = parse_svg(svg('<circle cx="50" cy="50" r="40" stroke="red" fill="none"/>')
                          ).polylines
    radii = np.hypot(*(circle.points - [50, 50]).T)
    assert radii.max() == pytest.approx(40, abs=1e-3)  # vertices lie on the circle
    # An inscribed polygon's chords stay within the tolerance of the arc...
    step = 2 * math.pi / len(circle.points)
    assert 40 * (1 - math.cos(step / 2)) <= TOL
    # ...so its perimeter is close to 2πr, and shorter.
    assert 2 * math.pi * 40 - 0.1 < ring_length(circle.points) < 2 * math.pi * 40


def test_ellipse_rounded_rect_and_arcs_are_flattened() -> None:
    body = ('<ellipse cx="50" cy="50" rx="30" ry="10" stroke="red" fill="none"/>'
            '<rect x="10" y="10" width="20" height="20" rx="5" stroke="blue" fill="none"/>'
            '<path d="M60 80 A10 10 0 0 1 80 80" stroke="red" fill="none"/>')
    ellipse, rounded, arc = parse_svg(svg(body)).polylines
    assert bbox(ellipse.points) == pytest.approx([20, 40, 80, 60], abs=TOL)
    # Rounded corners cut 4 * (2r - πr/2) off the 80 mm perimeter.
    assert ring_length(rounded.points) == pytest.approx(80 - 4 * (10 - 2.5 * math.pi), abs=0.1)
    assert rounded.stroke == "#0000ff"
    assert not arc.closed
    arc_length = float(np.hypot(*np.diff(arc.points, axis=0).T).sum())
    assert arc_length == pytest.approx(10 * math.pi, abs=0.05)


def test_beziers_are_flattened_within_tolerance() -> None:
    (curve,) = parse_svg(svg('<path d="M0 50 C0 0 100 0 100 50" stroke="red"/>')).polylines
    t = np.linspace(0, 1, 2001)[:, None]
    p = np.array([[0, 50], [0, 100], [100, 100], [100, 50]], dtype=float)  # y flipped
    exact = ((1 - t) ** 3 * p[0] + 3 * (1 - t) ** 2 * t * p[1]
             + 3 * (1 - t) * t**2 * p[2] + t**3 * p[3])
    # Every exact point is within tolerance of the polyline's nearest vertex or chord.
    nearest = np.min(np.hypot(*(exact[:, None, :] - curve.points[None]).transpose(2, 0, 1)),
                     axis=1)
    chord = float(np.max(np.hypot(*np.diff(curve.points, axis=0).T)))
    assert nearest.max() <= TOL + chord / 2
    assert len(curve.points) < 200  # and not absurdly fine


def test_colours_are_kept_with_styles_and_inheritance() -> None:
    body = ('<g stroke="#0000FF"><path d="M0 0 H10" fill="none"/></g>'
            '<path d="M0 0 H10" style="stroke:rgb(255,0,0);fill:none"/>'
            '<path d="M0 0 H10 V10 Z"/>')
    inherited, styled, default = parse_svg(svg(body)).polylines
    assert inherited.stroke == "#0000ff"
    assert styled.stroke == "#ff0000" and styled.fill is None
    assert default.stroke is None and default.fill == "#000000"  # SVG's default paint


def test_text_and_images_are_warned_about() -> None:
    body = ('<text x="5" y="5">Hello</text>'
            '<image xlink:href="data:image/png;base64,iVBORw0KGgo=" width="5" height="5"/>'
            '<path d="M0 0 H10" stroke="red"/>')
    drawing = parse_svg(svg(body))
    assert {"svg_text", "svg_image"} <= codes(drawing)
    assert len(drawing.polylines) == 1


@pytest.mark.parametrize("text", ["100mm", "12.5 cm", "3in", "7pt", "-1e2px", "40"])
def test_parse_length_accepts_svg_lengths(text: str) -> None:
    assert parse_length(text) is not None


@pytest.mark.parametrize("text", [None, "100%", "10furlongs", "abc", ""])
def test_parse_length_rejects_what_it_cannot_size(text: str | None) -> None:
    assert parse_length(text) is None


# --- guards: hostile and oversized input is refused before parsing ---------------------------


def refused_code(data: bytes, **limits: int) -> str:
    with pytest.raises(Refused) as caught:
        parse_svg(data, **limits)
    return caught.value.finding.code


def test_billion_laughs_is_refused() -> None:
    entities = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    data = (f'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY lol0 "lol">{entities}]>'
            '<svg xmlns="http://www.w3.org/2000/svg"><text>&lol9;</text></svg>').encode()
    assert refused_code(data) == "svg_entities"  # how fast: bench/bench_unit_timings.py


def test_external_entity_is_refused() -> None:
    data = (b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            b'<svg xmlns="http://www.w3.org/2000/svg"><text>&xxe;</text></svg>')
    assert refused_code(data) == "svg_entities"


def test_plain_doctype_without_entities_is_accepted() -> None:
    data = (b'<?xml version="1.0"?><!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
            b'"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">' + svg(
                '<path d="M0 0 H10" stroke="red"/>'))
    assert len(parse_svg(data).polylines) == 1


def test_a_million_segments_is_refused_fast_before_parsing() -> None:
    d = "M0 0" + " L1 1 L2 0" * 500_000
    data = svg(f'<path d="{d}" stroke="red"/>')
    assert refused_code(data) == "svg_too_complex"  # before parsing: bench_unit_timings.py
    assert estimate_segments(data) >= 1_000_000


def test_byte_limit_and_non_svg_input() -> None:
    assert refused_code(svg("<path d='M0 0 H1'/>"), max_bytes=50) == "file_too_large"
    assert refused_code(b"<html><body/></html>") == "svg_not_svg"
    assert refused_code(b"this is not xml") == "svg_unreadable"
    assert refused_code(b"\x1f\x8b\x08\x00gzip") == "svg_compressed"
    assert refused_code("<svg/>".encode("utf-16")) == "svg_encoding"


def test_flattening_budget_refuses_absurdly_large_curves() -> None:
    # A 1 km circle at 0.05 mm would need ~400k points per quarter: over a small budget.
    data = svg('<circle cx="0" cy="0" r="1000000" stroke="red"/>')
    assert refused_code(data, max_points=10_000) == "svg_too_complex"


@pytest.mark.parametrize("tag", ["symbol", "marker", "mask"])
def test_templates_are_drawn_only_where_used(tag: str) -> None:
    body = (f'<{tag} id="t"><rect width="5" height="5" stroke="red" fill="none"/></{tag}>'
            '<use xlink:href="#t" x="10" y="10"/>' if tag == "symbol" else
            f'<{tag} id="t"><rect width="5" height="5" stroke="red" fill="none"/></{tag}>'
            '<path d="M50 50 H60" stroke="red"/>')
    lines = parse_svg(svg(body)).polylines
    # No stray copy of the template's content at the origin (page top-left, y=100 mm up).
    assert all(bbox(p.points) != [0.0, 95.0, 5.0, 100.0] for p in lines)
    assert len(lines) == 1


@pytest.mark.parametrize("d", ["M0 0 L1e999 0", "M0 0 C1e999 0 1 1 2 2",
                               "M0 0 A1e999 5 0 0 1 10 0", "M0 0 L1e300 0"])
def test_infinite_or_absurd_coordinates_are_refused(d: str) -> None:
    assert refused_code(svg(f'<path d="{d}" stroke="red" fill="none"/>')) == "svg_out_of_range"
