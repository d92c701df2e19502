"""The emulator's planner and motion: blocks executed at their feed, in simulated time.

A block takes its distance over its feed rate (rapids: each axis at its max rate), times
the machine's ``time_scale``, plus ``min_block_s``. Back-to-back blocks start when the
previous one ended, so Python's sleep jitter does not add up over thousands of blocks.
Mixed into ``GrblMachine``; all methods run with its condition variable held.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from fabqueue.simulators.grbl.gcode import Move, Vector


@dataclass(frozen=True)
class MotionSegment:
    """One executed planner block, for the tests' assertions."""

    line_number: int  # the line's number among all lines received since start (1-based)
    source: str  # the line as received
    start: Vector
    end: Vector  # where the motion stopped (the target unless cut short)
    rapid: bool
    feed: float  # mm/min used (rapids: the axes' max rate)
    spindle: str  # "M3", "M4", "M5"
    power: float  # laser power applied (0 = off): S clamped to $30, off for G0 in laser mode
    completed: bool  # False when a reset or alarm cut the move short
    jog: bool = False

    @property
    def laser_on(self) -> bool:
        return self.power > 0


@dataclass
class PlannerBlock:
    move: Move
    line_number: int
    source: str
    duration_s: float
    feed: float
    power: float
    jog: bool = False


class MotionMixin:
    """The planner and motion loop of ``GrblMachine`` (which defines the state used here)."""

    def _plan(self, move: Move, line_number: int, source: str, *, jog: bool = False) -> None:
        deltas = [abs(e - s) for s, e in zip(move.start, move.end, strict=True)]
        distance = math.sqrt(sum(d * d for d in deltas))
        rates = (self.settings[110], self.settings[111], self.settings[112])
        axis_limited_min = max(d / r for d, r in zip(deltas, rates, strict=True))
        feed_ov, rapid_ov, spindle_ov = self._overrides
        if move.rapid:
            minutes = axis_limited_min * 100 / rapid_ov
        else:
            minutes = max(distance / (move.feed * feed_ov / 100), axis_limited_min)
        feed = distance / minutes if minutes > 0 else 0.0
        off = move.spindle == "5" or (move.rapid and self.settings[32]) or jog
        power = 0.0 if off else min(move.power, self.settings[30]) * spindle_ov / 100
        duration = minutes * 60 * self.time_scale + self.min_block_s
        self._planner.append(PlannerBlock(move, line_number, source, duration, feed, power, jog))
        self._cv.notify_all()

    def _log(self, block: PlannerBlock, end: Vector, *, completed: bool) -> None:
        self.segments.append(
            MotionSegment(
                block.line_number, block.source, block.move.start, end, block.move.rapid,
                block.feed, "M" + block.move.spindle, block.power, completed, block.jog,
            )
        )  # fmt: skip

    def motion_loop(self) -> None:
        previous_end: float | None = None  # back-to-back blocks start when the last ended
        with self._cv:
            while not self.closed:
                if not self._planner or self._hold:
                    if not self._planner:
                        previous_end = None  # starved: the next block starts when it arrives
                    self._cv.wait(0.05)
                    continue
                block, epoch = self._planner[0], self._epoch
                now = time.monotonic()
                self._t0 = previous_end if previous_end is not None else now
                self._t_end = self._t0 + block.duration_s
                self._current = block
                previous_end = self._run_block(block, epoch)

    def _run_block(self, block: PlannerBlock, epoch: int) -> float | None:
        """Wait out one block (pausing for holds); its end time, or None if it was aborted."""
        while not self.closed and epoch == self._epoch:
            now = time.monotonic()
            if self._hold:
                remaining = max(0.0, self._t_end - self._hold_at)
                while self._hold and epoch == self._epoch and not self.closed:
                    self._cv.wait(0.05)
                if epoch != self._epoch or self.closed:
                    return None
                self._t_end = self._resumed_at + remaining
                self._t0 = self._t_end - block.duration_s
                continue
            if now >= self._t_end:
                self._planner.popleft()
                self._current = None
                self._position = block.move.end
                self._log(block, block.move.end, completed=True)
                self._cv.notify_all()
                return self._t_end
            self._cv.wait(min(self._t_end - now, 0.02))
        return None
