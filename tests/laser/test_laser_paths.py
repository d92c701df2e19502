"""Colours to operations, hatching, and the checks on cut lines."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fabqueue.laser.materials import Operation
from fabqueue.laser.paths import ColourMap, hatch, self_intersects, toolpaths_from_drawing
from fabqueue.laser.svg import parse_svg


def svg(body: str) -> bytes:
    return (b'<svg xmlns="http://www.w3.org/2000/svg" width="100mm" height="100mm" '
            b'viewBox="0 0 100 100">' + body.encode() + b"</svg>")


def toolpaths(body: str, colours: ColourMap | None = None, interval: float = 0.1):
    return toolpaths_from_drawing(parse_svg(svg(body)), colours, engrave_interval_mm=interval)


def codes(findings) -> set[str]:
    return {f.code for f in findings}


def test_colours_map_to_operations() -> None:
    result = toolpaths(
        '<rect x="10" y="10" width="20" height="20" stroke="#ff0000" fill="none"/>'
        '<path d="M40 40 H60" stroke="#0000FF" fill="none"/>'
        '<rect x="70" y="70" width="10" height="10" fill="#000000"/>')
    ops = {p.operation for p in result.paths}
    assert ops == {Operation.CUT, Operation.SCORE, Operation.ENGRAVE}
    rows = {r["operation"]: r for r in result.summary()}
    assert rows["cut"] == {"colour": "#ff0000", "operation": "cut", "length_mm": 80.0}
    assert rows["score"]["length_mm"] == 20.0 and rows["score"]["colour"] == "#0000ff"
    assert rows["engrave"]["area_mm2"] == pytest.approx(100, rel=0.02)
    assert not result.errors


def test_unknown_colours_are_warned_by_name_and_ignored() -> None:
    result = toolpaths('<path d="M0 0 H10" stroke="#00ff00" fill="none"/>'
                       '<rect x="1" y="1" width="5" height="5" fill="#123456"/>'
                       '<path d="M0 0 H10" stroke="red" fill="none"/>')
    (warning,) = [w for w in result.warnings if w.code == "svg_unknown_colours"]
    assert warning.params["colours"] == "#00ff00, #123456"
    assert "#00ff00" in warning.render()
    assert [p.operation for p in result.paths] == [Operation.CUT]


def test_a_site_colour_map_changes_the_convention() -> None:
    site = ColourMap(cut_strokes=("#000000",), score_strokes=("#00ff00",), engrave_fills=())
    result = toolpaths('<path d="M0 0 H10" stroke="black" fill="none"/>'
                       '<path d="M0 5 H10" stroke="#00ff00" fill="none"/>'
                       '<path d="M0 9 H10" stroke="red" fill="none"/>', site)
    assert [p.operation for p in result.paths] == [Operation.CUT, Operation.SCORE]
    assert "#ff0000" in next(w for w in result.warnings if w.code == "svg_unknown_colours"
                             ).params["colours"]


def test_only_unknown_colours_is_an_error() -> None:
    result = toolpaths('<path d="M0 0 H10" stroke="#00ff00" fill="none"/>')
    assert codes(result.errors) == {"nothing_to_cut"}
    assert "svg_unknown_colours" in codes(result.warnings)


def test_empty_drawing_is_an_error() -> None:
    result = toolpaths("")
    assert codes(result.errors) == {"nothing_to_cut"}
    assert result.paths == [] and result.bbox() is None


def test_open_and_self_intersecting_cuts_are_kept_with_warnings() -> None:
    result = toolpaths('<path d="M10 10 L20 20 L10 20 L20 10 Z" stroke="red" fill="none"/>'
                       '<path d="M40 40 L60 40 L60 60" stroke="red" fill="none"/>')
    assert len(result.paths) == 2  # both are still cut, as drawn
    assert {"open_path", "self_intersecting"} <= codes(result.warnings)
    assert not result.errors


def test_open_score_lines_are_normal() -> None:
    result = toolpaths('<path d="M40 40 L60 40" stroke="blue" fill="none"/>')
    assert "open_path" not in codes(result.warnings)


def test_self_intersects_on_simple_and_crossing_rings() -> None:
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], dtype=float)
    bowtie = np.array([[0, 0], [10, 10], [10, 0], [0, 10]], dtype=float)
    angles = np.linspace(0, 2 * np.pi, 500, endpoint=False)
    circle = np.c_[np.cos(angles), np.sin(angles)]
    assert not self_intersects(square)
    assert self_intersects(bowtie)
    assert not self_intersects(circle)


def test_hatch_area_matches_the_shape_area_with_even_odd_holes() -> None:
    # A 40 mm square with a 20 mm square hole and a separate r=10 disc.
    outer = np.array([[0, 0], [40, 0], [40, 40], [0, 40]], dtype=float)
    hole = np.array([[10, 10], [30, 10], [30, 30], [10, 30]], dtype=float)
    angles = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    disc = np.c_[np.cos(angles), np.sin(angles)] * 10 + [70, 20]
    interval = 0.1
    segments = hatch([[outer, hole], [disc]], interval)
    area = sum(float(np.hypot(*(s[1] - s[0]))) for s in segments) * interval
    assert area == pytest.approx(1600 - 400 + math.pi * 100, rel=0.01)
    # Nothing is engraved inside the hole.
    assert not any(12 < s[0, 1] < 28 and min(s[:, 0]) > 10 and max(s[:, 0]) < 30
                   for s in segments)


def test_hatch_rows_alternate_direction_and_overlaps_engrave_once() -> None:
    a = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], dtype=float)
    b = a + np.array([5.0, 0.0])  # overlaps a by half
    segments = hatch([[a], [b]], 1.0)
    assert len(segments) == 10  # one merged span per row, not two
    assert all(float(np.hypot(*(s[1] - s[0]))) == pytest.approx(15) for s in segments)
    directions = [np.sign(s[1, 0] - s[0, 0]) for s in segments]
    assert directions[:4] == [1, -1, 1, -1]


def test_engrave_interval_sets_the_row_spacing() -> None:
    result = toolpaths('<rect x="0" y="0" width="10" height="10" fill="black"/>', interval=0.5)
    rows = sorted({round(float(p.points[0, 1]), 3) for p in result.paths})
    assert len(rows) == 20
    assert np.diff(rows) == pytest.approx(0.5)


def test_an_absurdly_large_engraving_is_an_error_not_a_memory_blowup() -> None:
    # 1 km of black at 0.1 mm would need 10 million hatch rows.
    result = toolpaths('<rect x="0" y="0" width="10" height="10" fill="black"/>'
                       '<path d="M0 0 H10" stroke="red" fill="none"/>'.replace(
                           'height="10"', 'height="1000000"'))
    assert codes(result.errors) == {"engrave_too_large"}
    assert [p.operation for p in result.paths] == [Operation.CUT]
