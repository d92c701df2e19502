"""Beam-on seconds of a laser program (what maintenance counts for lenses and tubes)."""

from __future__ import annotations

from fabqueue.laser.beam import beam_seconds


def test_only_lit_cutting_moves_count() -> None:
    lines = ["G21", "M4 S0", "G0 X1 Y1", "G1 X2 Y2 F300 S500", "G1 X3 ; cut", "G0 X0",
             "G1 X4 S0", "M5", "G1 X5 S500", "M3 S200", "G2 X6 Y6 I1 J0"]
    seconds = [0, 0, 1, 2, 3, 4, 5, 0, 6, 0, 7]
    # lit: the two G1 at S500 (2 + 3) and the arc after M3 S200 (7); not travel (G0), not
    # S0, not after M5
    assert beam_seconds(lines, seconds) == 12.0


def test_a_frame_run_fires_nothing() -> None:
    lines = ["M5", "G1 X10 F3000 S0", "G1 Y10", "G1 X0", "G1 Y0", "M5"]
    assert beam_seconds(lines, [0, 1, 1, 1, 1, 0]) == 0.0
