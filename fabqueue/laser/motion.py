"""How long GRBL takes to run G-code: its planner's model, as pure code.

GRBL 1.1 plans each move as a trapezoid (accelerate, cruise, decelerate) and joins moves at
a junction speed limited by the junction deviation ``$11``: the tighter the corner, the
slower. Accelerations (``$120``/``$121``, mm/s²) and maximum rates (``$110``/``$111``,
mm/min) are per axis, so a diagonal move gets the limit of its tightest axis. The planner
looks only 15 blocks ahead: every move must be able to stop within the blocks already
planned, which slows long runs of short segments (curves, engraving).

``line_seconds(lines, machine)`` gives each line's duration (0 for lines that don't move),
the sum being the job's estimate. Lines that make GRBL wait for the planner to drain
(``M3``/``M4``/``M5``, coolant ``M7``-``M9``, ``G4``) end the motion at standstill.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

WORD = re.compile(r"([A-Z])(-?\d*\.?\d+)")
PLANNER_BLOCKS = 15
#: The controller's own floor per block (planning and step generation on an ATmega328p,
#: measured ~5 ms in shared/notes/grbl.md): a long run of tiny segments is not free.
MIN_BLOCK_SECONDS = 0.005


@dataclass(frozen=True)
class GrblMachine:
    """The GRBL settings that decide motion time."""

    max_rate_mm_min: tuple[float, float] = (6000.0, 6000.0)  # $110, $111
    accel_mm_s2: tuple[float, float] = (1000.0, 1000.0)  # $120, $121
    junction_deviation_mm: float = 0.01  # $11
    planner_blocks: int = PLANNER_BLOCKS

    @classmethod
    def from_settings(cls, settings: Mapping[str, object], *,
                      max_speed_mm_min: float | None = None) -> GrblMachine:
        """From ``$$`` values keyed ``"$110"`` (or ``110``); missing ones keep the defaults,
        a laser's configured top speed fills in when ``$110``/``$111`` are unknown."""
        default = cls()

        def get(key: int, fallback: float) -> float:
            for k in (f"${key}", str(key), key):
                value = settings.get(k)  # type: ignore[call-overload]
                try:
                    if value is not None and float(value) > 0:
                        return float(value)
                except (TypeError, ValueError):
                    pass
            return fallback

        top = max_speed_mm_min or default.max_rate_mm_min[0]
        return cls(
            max_rate_mm_min=(get(110, top), get(111, top)),
            accel_mm_s2=(get(120, default.accel_mm_s2[0]), get(121, default.accel_mm_s2[1])),
            junction_deviation_mm=get(11, default.junction_deviation_mm),
        )


@dataclass
class _Block:
    line: int
    length: float  # mm
    unit: tuple[float, float]
    nominal: float  # mm/s
    accel: float  # mm/s²
    stop_before: bool  # the planner drained before this block (a sync line)
    entry: float = 0.0
    max_entry: float = 0.0


def _axis_limit(unit: tuple[float, float], limits: tuple[float, float]) -> float:
    """GRBL's limit_value_by_axis_maximum: the largest value along ``unit`` that no axis's
    own limit is exceeded by."""
    value = math.inf
    for u, limit in zip(unit, limits, strict=True):
        if abs(u) > 1e-12:
            value = min(value, limit / abs(u))
    return value


def _blocks(lines: Sequence[str], machine: GrblMachine) -> list[_Block]:
    blocks: list[_Block] = []
    x = y = 0.0
    feed = 0.0
    motion = "G0"
    absolute = True
    sync = False
    rapid = tuple(r / 60.0 for r in machine.max_rate_mm_min)
    for number, raw in enumerate(lines):
        code = re.sub(r"\([^)]*\)", "", raw.split(";", 1)[0]).upper().replace(" ", "")
        if not code:
            continue
        words = WORD.findall(code)
        tx, ty = x, y
        moved = False
        for letter, value in words:
            v = float(value)
            if letter == "G":
                g = int(v) if v.is_integer() else v
                if g in (0, 1):
                    motion = f"G{g}"
                elif g == 4:
                    sync = True
                elif g == 90:
                    absolute = True
                elif g == 91:
                    absolute = False
            elif letter == "M" and int(v) in (0, 1, 2, 3, 4, 5, 7, 8, 9, 30):
                sync = True
            elif letter == "F":
                feed = v / 60.0
            elif letter == "X":
                tx, moved = (v if absolute else x + v), True
            elif letter == "Y":
                ty, moved = (v if absolute else y + v), True
        if not moved:
            continue
        dx, dy = tx - x, ty - y
        length = math.hypot(dx, dy)
        x, y = tx, ty
        if length < 1e-9:
            continue
        unit = (dx / length, dy / length)
        limit = _axis_limit(unit, rapid)
        nominal = limit if motion == "G0" or feed <= 0 else min(feed, limit)
        accel = _axis_limit(unit, machine.accel_mm_s2)
        blocks.append(_Block(number, length, unit, nominal, accel, sync))
        sync = False
    return blocks


def _junction_limits(blocks: list[_Block], machine: GrblMachine) -> None:
    """Each block's largest entry speed: the corner (junction deviation) and both nominals."""
    previous: _Block | None = None
    for block in blocks:
        if previous is None or block.stop_before:
            block.max_entry = 0.0
        else:
            cos_theta = -(previous.unit[0] * block.unit[0] + previous.unit[1] * block.unit[1])
            if cos_theta > 0.999999:
                v = 0.0  # a full reversal
            elif cos_theta < -0.999999:
                v = math.inf  # straight on
            else:
                unit = (block.unit[0] - previous.unit[0], block.unit[1] - previous.unit[1])
                norm = math.hypot(*unit) or 1.0
                accel = _axis_limit((unit[0] / norm, unit[1] / norm), machine.accel_mm_s2)
                sin_half = math.sqrt(0.5 * (1.0 - cos_theta))
                v = math.sqrt(accel * machine.junction_deviation_mm * sin_half /
                              (1.0 - sin_half))
            block.max_entry = min(v, previous.nominal, block.nominal)
        previous = block


def _plan(blocks: list[_Block], machine: GrblMachine) -> None:
    """Backward then forward pass, with GRBL's limited look-ahead: a block must be able to
    stop within the ``planner_blocks`` blocks planned with it."""
    n = len(blocks)
    window = machine.planner_blocks
    # distance available to stop, from each block's start, within the look-ahead
    ahead = [0.0] * (n + 1)
    for i in range(n - 1, -1, -1):
        ahead[i] = ahead[i + 1] + blocks[i].length
    exit_speed = 0.0
    for i in range(n - 1, -1, -1):  # backward: can we slow down in time?
        block = blocks[i]
        end = min(n, i + window)
        reach = ahead[i] - ahead[end]
        horizon = math.sqrt(2.0 * block.accel * reach)
        nxt = 0.0 if i + 1 >= n or blocks[i + 1].stop_before else exit_speed
        block.entry = min(block.max_entry, horizon,
                          math.sqrt(nxt * nxt + 2.0 * block.accel * block.length))
        exit_speed = block.entry
    speed = 0.0
    for i, block in enumerate(blocks):  # forward: can we speed up in time?
        if block.stop_before:
            speed = 0.0
        block.entry = min(block.entry, speed)
        speed = math.sqrt(block.entry ** 2 + 2.0 * block.accel * block.length)
        if i + 1 < n:
            speed = min(speed, blocks[i + 1].entry if not blocks[i + 1].stop_before else 0.0,
                        block.nominal)


def _trapezoid_seconds(length: float, v0: float, v1: float, vn: float, accel: float) -> float:
    v0, v1 = min(v0, vn), min(v1, vn)
    accel_d = (vn * vn - v0 * v0) / (2.0 * accel)
    decel_d = (vn * vn - v1 * v1) / (2.0 * accel)
    if accel_d + decel_d <= length:
        return (vn - v0) / accel + (vn - v1) / accel + (length - accel_d - decel_d) / vn
    peak = math.sqrt(max((2.0 * accel * length + v0 * v0 + v1 * v1) / 2.0, 0.0))
    peak = max(peak, v0, v1)
    return (peak - v0) / accel + (peak - v1) / accel


def line_seconds(lines: Sequence[str], machine: GrblMachine | None = None) -> list[float]:
    """The estimated duration of each line of ``lines`` on GRBL (see the module docstring)."""
    machine = machine or GrblMachine()
    seconds = [0.0] * len(lines)
    blocks = _blocks(lines, machine)
    _junction_limits(blocks, machine)
    _plan(blocks, machine)
    for i, block in enumerate(blocks):
        following = blocks[i + 1] if i + 1 < len(blocks) else None
        exit_speed = 0.0 if following is None or following.stop_before else following.entry
        t = _trapezoid_seconds(block.length, block.entry, exit_speed, block.nominal,
                               block.accel)
        seconds[block.line] += max(t, MIN_BLOCK_SECONDS)
    return seconds


def total_seconds(lines: Sequence[str], machine: GrblMachine | None = None) -> float:
    return float(sum(line_seconds(lines, machine)))
