"""Guessing the unit a mesh was drawn in from its bounding box."""

from __future__ import annotations

import pytest

from fabqueue.core.units import guess_units


@pytest.mark.parametrize("bbox", [(20, 20, 20), (355.6, 3.175, 355.6), (8.5, 3, 2)])
def test_normal_parts_are_millimetres(bbox: tuple[float, float, float]) -> None:
    assert guess_units(bbox).unit == "mm" and guess_units(bbox).scale == 1.0


@pytest.mark.parametrize("bbox", [(5.0, 2.5, 1.375), (2.656, 2.953, 0.625), (2.0, 1.0, 0.5)])
def test_small_parts_are_probably_inches(bbox: tuple[float, float, float]) -> None:
    guess = guess_units(bbox)
    assert guess.unit == "inch" and guess.scale == 25.4


def test_whole_millimetres_in_centimetres() -> None:
    guess = guess_units((4.2, 3.3, 1.7))  # 42 × 33 × 17 mm drawn in cm
    assert guess.unit == "cm" and guess.scale == 10.0


def test_tiny_numbers_are_metres() -> None:
    assert guess_units((0.04, 0.02, 0.01)).unit == "m"


def test_empty_box_is_left_alone() -> None:
    assert guess_units((0.0, 0.0, 0.0)).unit == "mm"
