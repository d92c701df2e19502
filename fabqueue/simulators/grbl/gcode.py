"""The G-code subset of the GRBL 1.1h emulator: grammar, modal state and GRBL's error codes.

``interpret`` turns one line into the moves it plans (or a dwell / program end) and updates
the modal state, failing with the code GRBL answers (``error:N``). It is pure: the emulator
does the timing. Arcs are cut into chords with GRBL's own rule ($12 arc tolerance), so each
chord takes one planner block as on the firmware.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

Vector = tuple[float, float, float]

_WORD = re.compile(r"([A-Z])([+-]?(?:\d+\.?\d*|\.\d+))?")

# G-code number -> modal group (GRBL's groups: 0 non-modal, 1 motion, 2 plane, 3 distance,
# 4 arc distance, 5 feed mode, 6 units, 12 coordinate system).
_G_GROUPS: dict[str, int] = {
    "4": 0, "53": 0,
    "0": 1, "1": 1, "2": 1, "3": 1, "80": 1,
    "17": 2, "18": 2, "19": 2,
    "90": 3, "91": 3,
    "91.1": 4,
    "93": 5, "94": 5,
    "20": 6, "21": 6,
    "54": 12, "55": 12, "56": 12, "57": 12, "58": 12, "59": 12,
}  # fmt: skip
# M-code -> group (4 stopping, 7 spindle, 8 coolant). M7 (mist) is not compiled in by default.
_M_GROUPS: dict[str, int] = {
    "0": 4, "1": 4, "2": 4, "30": 4, "3": 7, "4": 7, "5": 7, "8": 8, "9": 8,
}  # fmt: skip
_VALUE_LETTERS = frozenset("FIJKNPRSTXYZ")
_AXES = "XYZ"


class GcodeError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"error:{code}")
        self.code = code


@dataclass
class Modal:
    """The parser state GRBL keeps between lines (`$G`)."""

    motion: str = "0"
    incremental: bool = False
    inches: bool = False
    plane: str = "17"
    coord_system: str = "54"
    feed: float = 0.0  # mm/min; 0 = undefined
    spindle: str = "5"  # "3" constant power, "4" dynamic power, "5" off
    power: float = 0.0  # S as programmed
    coolant: str = "9"
    position: Vector = (0.0, 0.0, 0.0)  # where the last planned move ends

    def report(self) -> str:
        dist = "G91" if self.incremental else "G90"
        units = "G20" if self.inches else "G21"
        return (
            f"[GC:G{self.motion} G{self.coord_system} G{self.plane} {units} {dist} G94 "
            f"M{self.spindle} M{self.coolant} T0 F{self.feed:g} S{self.power:g}]"
        )


@dataclass(frozen=True)
class Move:
    start: Vector
    end: Vector
    rapid: bool
    feed: float  # mm/min (0 for rapids: the machine's max rate applies)
    spindle: str
    power: float


@dataclass
class Interpreted:
    moves: list[Move] = field(default_factory=list)
    dwell_s: float | None = None  # G4: wait for the planner to empty, then dwell
    sync: bool = False  # wait for the planner to empty before answering (M2/M30/M0)
    pause: bool = False  # M0: program pause (feed hold)


def clean(line: str) -> str:
    """What GRBL keeps of a line: no spaces, no comments, upper case."""
    out: list[str] = []
    in_paren = False
    for ch in line:
        if in_paren:
            in_paren = ch != ")"
        elif ch == "(":
            in_paren = True
        elif ch == ";":
            break
        elif not ch.isspace():
            out.append(ch.upper())
    return "".join(out)


def _words(line: str) -> list[tuple[str, str]]:
    words: list[tuple[str, str]] = []
    pos = 0
    while pos < len(line):
        if not line[pos].isalpha():
            raise GcodeError(1)  # expected command letter
        match = _WORD.match(line, pos)
        if match is None or match.group(2) is None:
            raise GcodeError(2)  # bad number format
        words.append((match.group(1), match.group(2)))
        pos = match.end()
    return words


def _number_key(text: str) -> str:
    value = float(text)
    return f"{value:g}"


def interpret(line: str, modal: Modal, *, arc_tolerance: float = 0.002) -> Interpreted:
    """Plan one cleaned line against ``modal`` (mutated only when the line is accepted)."""
    gcodes: dict[int, str] = {}
    mcodes: dict[int, str] = {}
    values: dict[str, float] = {}
    for letter, number in _words(line):
        if letter == "G":
            key = _number_key(number)
            group = _G_GROUPS.get(key)
            if group is None:
                raise GcodeError(20)  # unsupported command
            if group in gcodes:
                # two motion commands collide as "axis command conflict" (24) before the
                # modal group check (21) is reached, as on the firmware
                raise GcodeError(24 if group == 1 else 21)
            gcodes[group] = key
        elif letter == "M":
            if float(number) != int(float(number)):
                raise GcodeError(23)  # value not an integer
            key = _number_key(number)
            group = _M_GROUPS.get(key)
            if group is None:
                raise GcodeError(20)
            if group in mcodes:
                raise GcodeError(21)  # modal group violation
            mcodes[group] = key
        elif letter in _VALUE_LETTERS:
            if letter in values:
                raise GcodeError(25)  # repeated word
            value = float(number)
            if letter in "FNPST" and value < 0:
                raise GcodeError(4)
            values[letter] = value
        else:
            raise GcodeError(20)
    new = replace(modal)
    return _execute(gcodes, mcodes, values, new, modal, arc_tolerance)


def _execute(
    gcodes: dict[int, str],
    mcodes: dict[int, str],
    values: dict[str, float],
    new: Modal,
    modal: Modal,
    arc_tolerance: float,
) -> Interpreted:
    result = Interpreted()
    scale = 25.4 if gcodes.get(6, "21" if not new.inches else "20") == "20" else 1.0
    if 6 in gcodes:
        new.inches = gcodes[6] == "20"
    if 3 in gcodes:
        new.incremental = gcodes[3] == "91"
    if 2 in gcodes:
        new.plane = gcodes[2]
    if 12 in gcodes:
        new.coord_system = gcodes[12]
    if "F" in values:
        new.feed = values["F"] * scale
    if "S" in values:
        new.power = values["S"]
    if 7 in mcodes:
        new.spindle = mcodes[7]
    if 8 in mcodes:
        new.coolant = mcodes[8]
    if 1 in gcodes:
        new.motion = gcodes[1]
    axis_words = {a: values[a] * scale for a in _AXES if a in values}
    if gcodes.get(0) == "4":
        if "P" not in values:
            raise GcodeError(28)  # value word missing
        result.dwell_s = values["P"]
    elif axis_words:
        if new.motion == "80":
            raise GcodeError(31)  # axis words with no command to use them
        machine = gcodes.get(0) == "53"
        target = tuple(
            axis_words.get(a, new.position[i])
            if (machine or not new.incremental) or a not in axis_words
            else new.position[i] + axis_words[a]
            for i, a in enumerate(_AXES)
        )
        if new.motion in ("1", "2", "3") and new.feed <= 0:
            raise GcodeError(22)  # feed rate undefined
        if new.motion in ("0", "1"):
            result.moves.append(_move(new, new.position, target))  # type: ignore[arg-type]
        else:
            result.moves.extend(_arc(new, target, values, scale, arc_tolerance))  # type: ignore[arg-type]
        new.position = target  # type: ignore[assignment]
    elif new.motion in ("2", "3") and 1 in gcodes:
        raise GcodeError(26)  # an arc with no axis words
    if 4 in mcodes:
        result.sync = True
        if mcodes[4] in ("2", "30"):  # program end resets the modes a job may have changed
            new.motion, new.incremental, new.spindle, new.coolant = "1", False, "5", "9"
            new.plane, new.coord_system = "17", "54"
        else:
            result.pause = True
    _commit(modal, new)
    return result


def _commit(modal: Modal, new: Modal) -> None:
    for name in modal.__dataclass_fields__:
        setattr(modal, name, getattr(new, name))


def _move(modal: Modal, start: Vector, end: Vector) -> Move:
    rapid = modal.motion == "0"
    return Move(start, end, rapid, 0.0 if rapid else modal.feed, modal.spindle, modal.power)


def _arc(
    modal: Modal, target: Vector, values: dict[str, float], scale: float, tolerance: float
) -> list[Move]:
    """Chords of a G2/G3 arc in the XY plane (other planes: one straight move)."""
    start = modal.position
    if modal.plane != "17":
        return [_move(modal, start, target)]
    clockwise = modal.motion == "2"
    dx, dy = target[0] - start[0], target[1] - start[1]
    if "R" in values:
        radius = values["R"] * scale
        h2 = 4 * radius * radius - dx * dx - dy * dy
        if (dx == 0 and dy == 0) or h2 < 0:
            raise GcodeError(33)  # invalid target
        h = -math.sqrt(h2) / math.hypot(dx, dy)
        if not clockwise:
            h = -h
        if radius < 0:
            h, radius = -h, -radius
        ci, cj = 0.5 * (dx - dy * h), 0.5 * (dy + dx * h)
    elif "I" in values or "J" in values:
        ci, cj = values.get("I", 0.0) * scale, values.get("J", 0.0) * scale
        radius = math.hypot(ci, cj)
        delta_r = abs(math.hypot(dx - ci, dy - cj) - radius)
        if delta_r > 0.005 and (delta_r > 0.5 or delta_r > 0.001 * radius):
            raise GcodeError(33)
    else:
        raise GcodeError(35)  # an arc needs an in-plane offset
    cx, cy = start[0] + ci, start[1] + cj
    a0 = math.atan2(start[1] - cy, start[0] - cx)
    a1 = math.atan2(target[1] - cy, target[0] - cx)
    sweep = a1 - a0
    if clockwise and sweep >= -1e-9:
        sweep -= 2 * math.pi
    elif not clockwise and sweep <= 1e-9:
        sweep += 2 * math.pi
    chord = math.sqrt(max(tolerance * (2 * radius - tolerance), 1e-12))
    segments = max(1, math.floor(abs(0.5 * sweep * radius) / chord))
    moves: list[Move] = []
    previous = start
    for k in range(1, segments + 1):
        if k == segments:
            point = target
        else:
            angle = a0 + sweep * k / segments
            z = start[2] + (target[2] - start[2]) * k / segments
            point = (cx + radius * math.cos(angle), cy + radius * math.sin(angle), z)
        moves.append(_move(modal, previous, point))
        previous = point
    return moves
