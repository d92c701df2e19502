"""G-code for GRBL 1.1 in laser mode (pure: a plan and settings in, lines and timings out).

``M4`` (dynamic power) scales the beam with the actual speed, so corners don't burn; ``S`` is
the operation's power in % of the laser's ``$30``. In laser mode ``G0`` moves are laser-off.
Every line is at most 80 characters (GRBL answers ``error:11`` to longer ones).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from fabqueue.core.findings import N_, Refused
from fabqueue.core.specs import LaserSpec
from fabqueue.laser.materials import LaserMaterial, Operation
from fabqueue.laser.motion import GrblMachine, line_seconds
from fabqueue.laser.planning import Plan

MAX_LINE = 80
#: GRBL on an ATmega328p plans about one block per 5 ms (shared/notes/grbl.md): a floor for
#: very short segments, which otherwise would be estimated as free.
MIN_BLOCK_SECONDS = 0.005
#: What the driver must check before a job starts (the driver reads ``$$``).
LASER_MODE_REQUIREMENT = (
    "GRBL must be in laser mode ($32=1) so that G0 moves and stops turn the beam off and M4 "
    "scales power with speed; $30 must equal the laser's max_power_s so that S is scaled right."
)

Point = tuple[float, float]
BBox = tuple[float, float, float, float]


@dataclass
class LaserProgram:
    lines: list[str]
    line_seconds: list[float]  # planned duration of each line, for progress and time left
    total_seconds: float
    cut_length_mm: float  # laser-on distance, all passes
    travel_length_mm: float  # laser-off distance, all passes
    bbox: BBox | None = None  # where the job lies on the bed (mm, after the offset)
    notes: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.lines) + "\n"

    def seconds_left(self, next_line: int) -> float:
        """Estimated time for lines ``next_line`` onwards (for the progress display)."""
        return float(sum(self.line_seconds[next_line:]))


def format_number(value: float) -> str:
    """At most 3 decimals, no trailing zeros, no ``-0``: ``12.5``, ``3``, ``-0.125``."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def power_to_s(power_pct: float, max_power_s: float) -> float:
    """GRBL ``S`` for a power in % of the laser's maximum (``$30``)."""
    return max(0.0, min(power_pct, 100.0)) / 100.0 * max_power_s


def plan_bbox(plan: Plan) -> BBox | None:
    if not plan.paths:
        return None
    stacked = np.concatenate([p.points for p in plan.paths])
    lo, hi = stacked.min(axis=0), stacked.max(axis=0)
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


def generate_gcode(
    plan: Plan, material: LaserMaterial, laser: LaserSpec, *, origin: Point = (0.0, 0.0)
) -> LaserProgram:
    """The job's program with its lower-left corner at ``origin`` on the bed.

    Raises :class:`Refused` (``laser_out_of_bed``) when the placed job leaves the bed.
    """
    bbox = plan_bbox(plan)
    if bbox is None:
        raise Refused("nothing_to_cut", N_("The job has nothing to cut, score or engrave."))
    shift = (origin[0] - bbox[0], origin[1] - bbox[1])
    placed = (origin[0], origin[1], bbox[2] + shift[0], bbox[3] + shift[1])
    check_fits(placed, laser)
    program = _program(plan, material, laser, shift)
    program.bbox = placed
    return program


def estimate_seconds(plan: Plan, material: LaserMaterial, laser: LaserSpec) -> float:
    """The same timing model as the program, without placing the job on a bed."""
    return _program(plan, material, laser, (0.0, 0.0)).total_seconds


def check_fits(bbox: BBox, laser: LaserSpec) -> None:
    width, height = laser.bed_mm
    if bbox[0] < 0 or bbox[1] < 0 or bbox[2] > width + 1e-6 or bbox[3] > height + 1e-6:
        raise Refused("laser_out_of_bed", N_(
            "The job ({job_w} × {job_h} mm at {x}, {y}) does not fit on the bed of {laser} "
            "({bed_w} × {bed_h} mm)."),
            job_w=round(bbox[2] - bbox[0], 1), job_h=round(bbox[3] - bbox[1], 1),
            x=round(bbox[0], 1), y=round(bbox[1], 1), laser=laser.id,
            bed_w=round(width, 1), bed_h=round(height, 1))


def frame_program(
    bbox: BBox, feed: float, *, laser: LaserSpec | None = None
) -> LaserProgram:
    """Trace ``bbox`` (bed coordinates) with the beam off, so staff can check the sheet."""
    if laser is not None:
        check_fits(bbox, laser)
    writer = _Writer(travel_feed=laser.max_speed_mm_min if laser else feed)
    writer.header()  # ends with M5: beam off, so the G1 moves below only move the head
    x0, y0, x1, y1 = bbox
    writer.travel((x0, y0))
    corners = [(x1, y0), (x1, y1), (x0, y1), (x0, y0)]
    for corner in corners:
        writer.move(corner, feed, s_value=0.0, lit=False)
    writer.raw("M5")
    return writer.finish()


def _program(plan: Plan, material: LaserMaterial, laser: LaserSpec, shift: Point) -> LaserProgram:
    writer = _Writer(travel_feed=laser.max_speed_mm_min)
    writer.header()
    writer.raw("M4 S0")  # dynamic power; S is set on each cutting move
    offset = np.asarray(shift, dtype=float)
    for op in (Operation.ENGRAVE, Operation.SCORE, Operation.CUT):
        paths = [p for p in plan.paths if p.operation is op]
        if not paths:
            continue
        settings = material.operation(op)
        feed = min(settings.speed_mm_min, laser.max_speed_mm_min)
        s_value = power_to_s(settings.power_pct, laser.max_power_s)
        writer.raw(f"; {op.value}: F{format_number(feed)} S{format_number(s_value)} "
                   f"x{settings.passes}")
        writer.raw("M8" if settings.air_assist else "M9")
        # Whole operation repeated per pass (not each path): the material cools between
        # passes, and holes still come before their parts in every pass.
        for _pass in range(settings.passes):
            for path in paths:
                points = path.points + offset
                writer.travel(tuple(points[0]))
                ring = np.vstack([points[1:], points[:1]]) if path.closed else points[1:]
                for point in ring:
                    writer.move(tuple(point), feed, s_value)
    writer.raw("M9")
    writer.raw("M5")
    program = writer.finish()
    # The timings that count: GRBL's planner (acceleration, corners, look-ahead), not
    # distance over feed, which is ~30 % short on curves and short segments.
    machine = GrblMachine.from_settings(laser.settings, max_speed_mm_min=laser.max_speed_mm_min)
    program.line_seconds = line_seconds(program.lines, machine)
    program.total_seconds = float(sum(program.line_seconds))
    return program


class _Writer:
    """Collects lines with their estimated durations and the lit / unlit distances."""

    def __init__(self, travel_feed: float) -> None:
        self.travel_feed = travel_feed
        self.lines: list[str] = []
        self.seconds: list[float] = []
        self.position: tuple[str, str] | None = None  # formatted, so rounding can't drift
        self.modal = ""  # the F and S last written
        self.xy = (0.0, 0.0)
        self.cut = 0.0
        self.travel_mm = 0.0

    def header(self) -> None:
        for line in ("G21", "G90", "M5"):
            self.raw(line)

    def raw(self, line: str, seconds: float = 0.0) -> None:
        if len(line) > MAX_LINE:
            raise ValueError(f"G-code line longer than {MAX_LINE} characters: {line[:40]}…")
        self.lines.append(line)
        self.seconds.append(seconds)

    def travel(self, point: Point) -> None:
        target = (format_number(point[0]), format_number(point[1]))
        if target == self.position:
            return
        distance = self._advance(point, target)
        self.travel_mm += distance
        self.raw(f"G0 X{target[0]} Y{target[1]}", self._duration(distance, self.travel_feed))

    def move(self, point: Point, feed: float, s_value: float, *, lit: bool = True) -> None:
        target = (format_number(point[0]), format_number(point[1]))
        if target == self.position:
            return  # rounds to where the head already is
        distance = self._advance(point, target)
        if lit:
            self.cut += distance
        else:
            self.travel_mm += distance
        line = f"G1 X{target[0]} Y{target[1]}"
        # F and S are modal in GRBL (G0 doesn't reset them): write them only when they change,
        # which keeps lines short for the 128-byte receive buffer.
        modal = f"F{format_number(feed)} S{format_number(s_value)}"
        if modal != self.modal:
            line += " " + modal
            self.modal = modal
        self.raw(line, self._duration(distance, feed))

    def _advance(self, point: Point, target: tuple[str, str]) -> float:
        distance = math.hypot(point[0] - self.xy[0], point[1] - self.xy[1])
        self.xy, self.position = (float(point[0]), float(point[1])), target
        return distance

    @staticmethod
    def _duration(distance: float, feed: float) -> float:
        return max(distance / feed * 60.0, MIN_BLOCK_SECONDS)

    def finish(self) -> LaserProgram:
        return LaserProgram(self.lines, self.seconds, float(sum(self.seconds)), self.cut,
                            self.travel_mm)
