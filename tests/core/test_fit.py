"""Fitting a part's bounding box into a build volume, turning and laying it as needed."""

from __future__ import annotations

import math

import pytest

from fabqueue.core.fit import fit_orientation, fits, fitting_ids, rect_rotation

MK3 = (250.0, 210.0, 220.0)


def test_fits_as_drawn() -> None:
    assert fit_orientation((20, 20, 20), MK3) == "as_is"
    assert fits((250, 210, 220), MK3)  # exactly the build volume


def test_turned_a_quarter_when_deeper_than_the_bed() -> None:
    assert fit_orientation((200, 240, 10), MK3) == "z90"


def test_too_tall_part_is_laid_down() -> None:
    orientation = fit_orientation((20, 30, 240), MK3)
    assert orientation is not None and orientation.startswith(("x90", "y90"))


def test_laid_down_keeps_the_preference_order() -> None:
    # lying on Y is tried before X: Y up means height 30, footprint 20 × 240
    assert fit_orientation((20, 30, 240), MK3) == "x90+z90"


def test_long_bar_fits_diagonally() -> None:
    orientation = fit_orientation((300, 10, 100), MK3)
    assert orientation is not None and orientation.startswith("z")
    angle = math.radians(int(orientation[1:]))
    # the turned rectangle really is inside the bed
    assert 300 * math.cos(angle) + 10 * math.sin(angle) <= 250 + 1e-6
    assert 300 * math.sin(angle) + 10 * math.cos(angle) <= 210 + 1e-6


def test_too_big_in_every_orientation() -> None:
    assert fit_orientation((355.6, 3.2, 355.6), MK3) is None
    assert not fits((400, 400, 400), MK3)


def test_longer_than_the_bed_diagonal_never_fits() -> None:
    assert rect_rotation(330, 1, 250, 210) is None


@pytest.mark.parametrize(("w", "d"), [(100, 50), (240, 30), (260, 20), (300, 12)])
def test_rect_rotation_is_sound(w: float, d: float) -> None:
    angle = rect_rotation(w, d, 250, 210)
    assert angle is not None
    a = math.radians(angle)
    assert w * math.cos(a) + d * math.sin(a) <= 250 + 1e-6
    assert w * math.sin(a) + d * math.cos(a) <= 210 + 1e-6


def test_tighter_footprint_lets_a_rotated_part_fit() -> None:
    # a 240 × 20 bar drawn at 45°: its bounding box is 184 × 184, which no turn fits on a
    # 200 × 175 bed, but the bar itself fits turned 39° from the bed's axes
    bed = (200.0, 175.0, 180.0)
    size = (184.0, 184.0, 10.0)
    assert fit_orientation(size, bed) is None
    footprints = [(240.0, 20.0, 45.0), (184.0, 10.0, 0.0), (184.0, 10.0, 0.0)]
    assert fit_orientation(size, bed, footprints) == "z354"  # 39° for the bar, minus its 45°


def test_fitting_ids_maps_printers_to_orientations() -> None:
    found = fitting_ids((200, 240, 10), [("mk3", MK3), ("mini", (180, 180, 180))])
    assert found == {"mk3": "z90"}
