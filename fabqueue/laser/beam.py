"""Beam-on time of a laser program: the seconds of the moves cut with the beam lit.

What wears a laser's lens, mirrors and tube is the time the beam is on, not the time the
job took (travel and the frame run fire nothing), so maintenance counts this.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_WORD = re.compile(r"([A-Z])(-?\d+(?:\.\d*)?)")


def beam_seconds(lines: Sequence[str], line_seconds: Sequence[float]) -> float:
    """Sum of the planned seconds of G1/G2/G3 moves while M3/M4 is on with S > 0."""
    on, s_value, motion, total = False, 0.0, 0, 0.0
    for line, seconds in zip(lines, line_seconds, strict=False):
        code = line.split(";", 1)[0].upper()
        for letter, number in _WORD.findall(code):
            value = float(number)
            if letter == "M" and value in (3, 4):
                on = True
            elif letter == "M" and value == 5:
                on = False
            elif letter == "S":
                s_value = value
            elif letter == "G" and value in (0, 1, 2, 3):
                motion = int(value)
        if on and s_value > 0 and motion in (1, 2, 3):
            total += float(seconds)
    return round(total, 1)
