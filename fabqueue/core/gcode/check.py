"""Follow a G-code program line by line and stop at the first thing the machine must not do.

Followed state: G90/G91 (absolute/relative), G20/G21 (inches/mm), M82/M83 (extrusion mode,
E is never bounded), G92 (set position: an offset between what the program says and where the
head is), G28 (home: the homed axes are at 0). Every move's target on every axis must lie in
the machine's volume; an arc (G2/G3, centre by I/J or radius R) is checked over its whole
sweep, not only its end point. A move relative to a position not yet known is refused: it
could go anywhere.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from fabqueue.core.findings import N_, Finding, finding
from fabqueue.core.gcode.rules import (
    FLAG_WORDS,
    MAX_COMMAND_CHARS,
    PERSISTENT_SETTINGS,
    SLICER_SETTINGS,
    MachineKind,
    MachineLimits,
    allowed_commands,
    allowed_words,
)
from fabqueue.core.gcode.tokens import TokenError, command_name, tokenize

AXES = "XYZ"
MOTION = frozenset({"G0", "G1", "G2", "G3"})
MODAL_STATE = frozenset({"G90", "G91", "G20", "G21", "M82", "M83", "G17", "G94"})
NOZZLE = frozenset({"M104", "M109"})
BED = frozenset({"M140", "M190"})
LASER_ON = frozenset({"M3", "M4"})
INCH_MM = 25.4
# The shape of nearly every line a slicer writes ("G1 X10.5 Y3 E.02 ; note"): read directly,
# with the same meaning as the full tokenizer gives it, about three times faster.
PLAIN_MOVE_RE = re.compile(
    r"G([01])((?: [XYZEF][-+]?(?:\d+\.?\d*|\.\d+))+)[ \t]*(?:;[^\n]*)?\r?\n?", re.ASCII)


class Refusal(Exception):
    def __init__(self, found: Finding) -> None:
        super().__init__(found.render())
        self.finding = found


def check_program(lines: Iterable[str], limits: MachineLimits) -> Finding | None:
    """The first problem (a Finding with ``line``), or None when every line is allowed."""
    return follow_program(lines, limits)[0]


def follow_program(lines: Iterable[str], limits: MachineLimits
                   ) -> tuple[Finding | None, dict[str, float | None]]:
    """The first problem (or None) and where the head is when the check stops, in machine mm
    (None: not known yet): the check's model of the machine, compared with a real firmware's
    in the tests."""
    state = State(limits)
    try:
        for number, raw in enumerate(lines, start=1):
            state.line(raw, number)
    except Refusal as refusal:
        return refusal.finding, dict(state.position)
    return None, dict(state.position)


class State:
    def __init__(self, limits: MachineLimits) -> None:
        self.limits = limits
        self.printer = limits.kind == MachineKind.PRINTER
        self.commands = allowed_commands(limits.kind)
        self.words = allowed_words(limits.kind)
        # Marlin's line buffer; GRBL (lasers) gets FabQueue's own short lines.
        self.max_chars = MAX_COMMAND_CHARS if self.printer else math.inf
        self.relative = False
        self.scale = 1.0  # mm per program unit
        self.position: dict[str, float | None] = dict.fromkeys(AXES)  # machine mm
        self.offset = dict.fromkeys(AXES, 0.0)  # machine = program × scale + offset
        self.motion = "G0"  # modal: axis words on a line without a command move like this
        slack = limits.tolerance_mm
        self.bounds = {  # below the bed is into the bed: no slack under Z 0
            axis: (0.0 if axis == "Z" else -slack, size + (slack if size > 0 else 0.0))
            for axis, size in zip(AXES, limits.volume_mm, strict=True)}

    def line(self, raw: str, number: int) -> None:
        if len(raw) > self.max_chars:
            self.length(raw, number)
        plain = PLAIN_MOVE_RE.fullmatch(raw)
        if plain is not None:
            words = plain.group(2).split()
            params = {word[0]: float(word[1:]) for word in words}
            if len(params) == len(words) and params.keys() <= self.words:
                self.motion = "G" + plain.group(1)
                self.move(self.motion, params, number)
                return
        try:
            parsed = tokenize(raw, paren_comments=not self.printer)
        except TokenError as error:
            raise Refusal(finding("gcode_unreadable", error.text, line=number,
                                  gcode=raw.strip()[:80])) from None
        if self.printer:
            self.one_command(parsed.words, raw, number)
        commands: list[str] = []
        params: dict[str, float] = {}
        for letter, value, written in parsed.words:
            if not written and not self.printer:
                raise Refusal(finding("gcode_unreadable", N_(
                    "Line {line}: a letter without its number: {gcode}"),
                    line=number, gcode=raw.strip()[:80]))
            if letter in "GM":
                commands.append(command_name(letter, written))
            elif letter == "T" and not commands:
                self.tool(value, written, number)
            elif letter in params:
                raise Refusal(finding("gcode_repeated_word", N_(
                    "Line {line} gives {letter} twice; the machine might read either."),
                    line=number, letter=letter))
            else:
                params[letter] = value
        for command in commands:
            self.allowed(command, number)
        for letter in params:
            if letter not in self.words:
                raise Refusal(finding("gcode_word_refused", N_(
                    "Line {line}: the word {letter} is not allowed on this machine."),
                    line=number, letter=letter, kind=str(self.limits.kind)))
        if "G29" in commands and "S" in params:
            # UBL: G29 S stores the mesh in an EEPROM slot; MBL: G29 S3-S5 edit or reset it.
            raise Refusal(finding("gcode_mesh_saved", N_(
                "Line {line}: G29 S saves or changes the printer's stored bed mesh, which "
                "stays after this print."), line=number))
        moves = [c for c in commands if c in MOTION or c in ("G28", "G92")]
        if len(moves) > 1:
            raise Refusal(finding("gcode_two_moves", N_(
                "Line {line} has two moves ({commands}); one move per line."),
                line=number, commands=" ".join(moves)))
        for command in commands:
            self.modal(command)
        for command in commands:
            self.setting(command, params, number)
        move = moves[0] if moves else None
        if move is None and any(a in params for a in AXES) and all(
                c in MODAL_STATE for c in commands):
            move = self.motion  # GRBL keeps the last motion mode
        if move in MOTION:
            self.motion = move
            self.move(move, params, number)
        elif move == "G28":
            self.home(params)
        elif move == "G92":
            self.set_position(params, number)
        if not self.printer and "S" in params:
            self.power(params["S"], number)

    def allowed(self, command: str, number: int) -> None:
        if self.printer and command in PERSISTENT_SETTINGS and not (
                self.limits.sliced and command in SLICER_SETTINGS):
            raise Refusal(finding("gcode_persistent_setting", N_(
                "Line {line}: {command} changes a printer setting that stays after this "
                "print and would change the next person's print; FabQueue does not send "
                "it."), line=number, command=command))
        if command not in self.commands and not (
                self.limits.sliced and command in SLICER_SETTINGS):
            raise Refusal(finding("gcode_command_refused", N_(
                "Line {line}: {command} is not allowed on this machine (FabQueue sends "
                "only the commands listed in its documentation)."),
                line=number, command=command, kind=str(self.limits.kind)))

    def length(self, raw: str, number: int) -> None:
        code = raw.split(";", 1)[0].rstrip()
        if len(code) > MAX_COMMAND_CHARS:
            raise Refusal(finding("gcode_line_too_long", N_(
                "Line {line} has {count} characters before its comment; the printer reads "
                "only the first {limit} and would run the cut-off rest."),
                line=number, count=len(code), limit=MAX_COMMAND_CHARS))

    def one_command(self, words: tuple[tuple[str, float, str], ...], raw: str,
                    number: int) -> None:
        """Marlin and Klipper run a line's first word as its command and read every later
        word as a parameter, so a second G or M word is never run: refuse the line rather
        than guess. Marlin/src/gcode/parser.cpp, GCodeParser::parse() (read at
        MarlinFirmware/Marlin 0007ebf): "Get the command letter, which must be G, M, or T"
        from the start of the line, then its number, then "Find all parameters": every later
        letter, G and M included, is only a parameter. Klipper (klippy/gcode.py,
        _process_commands) splits the line into letters and takes ``parts[1] + parts[2]`` as
        the command, the rest as parameters. A letter without a number is ignored by Marlin
        (rules.FLAG_WORDS) and an error to Klipper, unless it is a flag such as G28's axes."""
        if not words:
            return
        first = command_name(words[0][0], words[0][2]) if words[0][0] in "GMT" else None
        for letter, _value, written in words:
            if letter in "GM":  # a refused command is the clearer reason, wherever it is
                self.allowed(command_name(letter, written), number)
        for letter, _value, written in words[1:]:
            if letter in "GM":
                raise Refusal(finding("gcode_two_commands", N_(
                    "Line {line} has a second command ({command}); the printer runs only a "
                    "line's first command and reads the rest as its settings. Put each "
                    "command on its own line."),
                    line=number, command=command_name(letter, written)))
        flags = FLAG_WORDS.get(first or "", frozenset())
        for letter, _value, written in words[1:]:
            if not written and letter not in flags:
                raise Refusal(finding("gcode_letter_without_value", N_(
                    "Line {line}: {letter} has no number; the printer would ignore it, so the "
                    "line does not do what it seems to: {gcode}"),
                    line=number, letter=letter, gcode=raw.strip()[:80]))

    def modal(self, command: str) -> None:
        if command == "G90":
            self.relative = False
        elif command == "G91":
            self.relative = True
        elif command == "G20":
            self.scale = INCH_MM
        elif command == "G21":
            self.scale = 1.0

    def setting(self, command: str, params: dict[str, float], number: int) -> None:
        if command in NOZZLE or command in BED:
            limit = self.limits.nozzle_max_c if command in NOZZLE else self.limits.bed_max_c
            text = (N_("Line {line} heats the nozzle to {value} °C; the limit for this "
                       "material is {limit} °C.") if command in NOZZLE else
                    N_("Line {line} heats the bed to {value} °C; the limit for this material "
                       "is {limit} °C."))
            for key in ("S", "R"):
                value = params.get(key)
                if value is not None and not 0 <= value <= limit:
                    raise Refusal(finding("gcode_temperature", text, line=number,
                                          value=round(value, 1), limit=round(limit)))
            if "T" in params:
                self.tool(params["T"], f"{params['T']:g}", number)
        if command in LASER_ON and "S" in params:
            self.power(params["S"], number)

    def tool(self, value: float, written: str, number: int) -> None:
        if value != int(value) or not 0 <= value < self.limits.tools:
            raise Refusal(finding("gcode_tool", N_(
                "Line {line} selects tool T{tool}; this machine has {count}."),
                line=number, tool=written, count=self.limits.tools))

    def power(self, value: float, number: int) -> None:
        top = self.limits.max_power_s
        if top is not None and not 0 <= value <= top:
            raise Refusal(finding("gcode_power", N_(
                "Line {line} sets the laser power S{value}; the most is S{limit}."),
                line=number, value=f"{value:g}", limit=f"{top:g}"))

    def target(self, axis: str, value: float, number: int) -> float:
        if not self.relative:
            return value * self.scale + self.offset[axis]
        current = self.position[axis]
        if self.relative:
            if current is None:
                raise Refusal(finding("gcode_unknown_position", N_(
                    "Line {line} moves {axis} relative to a position that is not known yet "
                    "(home the machine or move to an absolute position first)."),
                    line=number, axis=axis))
            return current + value * self.scale
        return value * self.scale + self.offset[axis]

    def move(self, command: str, params: dict[str, float], number: int) -> None:
        start = dict(self.position) if command in ("G2", "G3") else None
        bounds = self.bounds
        for axis in AXES:
            if axis in params:
                value = self.target(axis, params[axis], number)
                low, high = bounds[axis]
                if not low <= value <= high:
                    self.inside(axis, value, number)  # raises, with the reason
                self.position[axis] = value
        if start is not None:
            self.arc(command, start, params, number)

    def arc(self, command: str, start: dict[str, float | None], params: dict[str, float],
            number: int) -> None:
        x0, y0 = start["X"], start["Y"]
        x1, y1 = self.position["X"], self.position["Y"]
        if x0 is None or y0 is None or x1 is None or y1 is None:
            raise Refusal(finding("gcode_unknown_position", N_(
                "Line {line} moves {axis} relative to a position that is not known yet "
                "(home the machine or move to an absolute position first)."),
                line=number, axis="XY"))
        clockwise = command == "G2"
        if "R" in params:
            centre = centre_from_radius(x0, y0, x1, y1, params["R"] * self.scale, clockwise)
            if centre is None:
                raise Refusal(finding("gcode_bad_arc", N_(
                    "Line {line}: the arc's radius is too small to reach its end point."),
                    line=number))
        elif "I" in params or "J" in params:
            centre = (x0 + params.get("I", 0.0) * self.scale,
                      y0 + params.get("J", 0.0) * self.scale)
        else:
            raise Refusal(finding("gcode_bad_arc", N_(
                "Line {line}: the arc has neither a centre (I, J) nor a radius (R)."),
                line=number))
        low, high = arc_extent((x0, y0), (x1, y1), centre, clockwise)
        circles = params.get("P")
        if circles is not None:
            # Marlin's ARC_P_CIRCLES (Marlin/src/gcode/motion/G2_G3.cpp): "P indicates
            # number of circles to do", read with parser.byteval('P') (a fraction is cut,
            # outside 0..100 an error): P full turns before the arc itself.
            if circles != int(circles) or not 0 <= circles <= 100:
                raise Refusal(finding("gcode_bad_arc", N_(
                    "Line {line}: an arc's number of full circles (P) must be a whole "
                    "number from 0 to 100."), line=number))
            if circles >= 1:
                radius = math.hypot(x0 - centre[0], y0 - centre[1])
                low = (centre[0] - radius, centre[1] - radius)
                high = (centre[0] + radius, centre[1] + radius)
        for axis, index in (("X", 0), ("Y", 1)):
            self.inside(axis, low[index], number)
            self.inside(axis, high[index], number)

    def inside(self, axis: str, value: float, number: int) -> None:
        size = self.limits.volume_mm[AXES.index(axis)]
        low, high = self.bounds[axis]
        if not low <= value <= high:
            raise Refusal(finding("gcode_outside", N_(
                "Line {line} moves {axis} to {value} mm, outside this machine's 0 to "
                "{limit} mm."), line=number, axis=axis, value=round(value, 2),
                limit=round(size, 1)))

    def home(self, params: dict[str, float]) -> None:
        for axis in [a for a in AXES if a in params] or list(AXES):
            self.position[axis] = 0.0
            self.offset[axis] = 0.0

    def set_position(self, params: dict[str, float], number: int) -> None:
        for axis in AXES:
            if axis not in params:
                continue
            current = self.position[axis]
            if current is None:
                raise Refusal(finding("gcode_unknown_offset", N_(
                    "Line {line} sets the {axis} position (G92) before the machine knows where "
                    "{axis} is."), line=number, axis=axis))
            self.offset[axis] = current - params[axis] * self.scale


def centre_from_radius(x0: float, y0: float, x1: float, y1: float, radius: float,
                       clockwise: bool) -> tuple[float, float] | None:
    """The centre of the R-form arc (negative R: the long way round, as RS274 says)."""
    dx, dy = x1 - x0, y1 - y0
    chord = math.hypot(dx, dy)
    if chord == 0 or abs(radius) * 2 < chord - 1e-6:
        return None
    h = math.sqrt(max(radius * radius - chord * chord / 4, 0.0))
    # Clockwise with positive R: the centre is to the right of the chord.
    side = -1.0 if clockwise else 1.0
    if radius < 0:
        side = -side
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    return mx - side * h * dy / chord, my + side * h * dx / chord


def arc_extent(start: tuple[float, float], end: tuple[float, float],
               centre: tuple[float, float], clockwise: bool
               ) -> tuple[tuple[float, float], tuple[float, float]]:
    """The bounding box of the arc from ``start`` to ``end`` around ``centre``."""
    cx, cy = centre
    radius = math.hypot(start[0] - cx, start[1] - cy)
    a0 = math.atan2(start[1] - cy, start[0] - cx)
    a1 = math.atan2(end[1] - cy, end[0] - cx)
    # Sweep counter-clockwise from a0 to a1 (G3), or from a1 to a0 for clockwise (G2).
    begin, finish = (a1, a0) if clockwise else (a0, a1)
    sweep = (finish - begin) % (2 * math.pi)
    if sweep < 1e-9:
        sweep = 2 * math.pi  # same start and end: a full circle
    xs, ys = [start[0], end[0]], [start[1], end[1]]
    for quarter in range(4):
        angle = quarter * math.pi / 2
        if (angle - begin) % (2 * math.pi) <= sweep:
            xs.append(cx + radius * math.cos(angle))
            ys.append(cy + radius * math.sin(angle))
    return (min(xs), min(ys)), (max(xs), max(ys))
