"""GRBL 1.1 reply lines → typed items. Pure: no I/O, never raises.

The link to a laser is noisy (the real firmware under load drops characters; a USB adapter
beside a laser power supply flips bits), so every line is checked against the exact shape
GRBL 1.1h gives it; anything else (a garbled status report, half a line, stray bytes) is a
:class:`Noise` item that the driver counts and logs. A status report is accepted only when
every field is well formed: a wrong ``Bf:`` value would put character counting out of step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STATES = frozenset(
    {"Idle", "Run", "Hold:0", "Hold:1", "Jog", "Alarm", "Door:0", "Door:1", "Door:2",
     "Door:3", "Check", "Home", "Sleep", "Hold"}
)
NUMBER = r"-?\d+(?:\.\d+)?"
AXES = rf"{NUMBER}(?:,{NUMBER}){{2,5}}"
FIELDS: dict[str, re.Pattern[str]] = {
    "MPos": re.compile(AXES), "WPos": re.compile(AXES), "WCO": re.compile(AXES),
    "Bf": re.compile(r"\d{1,3},\d{1,3}"), "Ln": re.compile(r"\d+"),
    "F": re.compile(NUMBER), "FS": re.compile(rf"{NUMBER},{NUMBER}"),
    "Pn": re.compile(r"[XYZPDHRS]{0,8}"), "Ov": re.compile(r"\d{1,3},\d{1,3},\d{1,3}"),
    "A": re.compile(r"[SCFM]{0,4}"),
}
BANNER = re.compile(r"Grbl (\d+\.\d+[a-z]?) \['\$' for help\]")
SETTING = re.compile(r"\$(\d{1,3})=(-?\d+(?:\.\d+)?)")
CODE = re.compile(r"(error|ALARM):(\d{1,3})")


@dataclass(frozen=True)
class Ok:
    pass


@dataclass(frozen=True)
class Error:
    code: int | None  # None: GRBL 0.9's `error: text` or a garbled number


@dataclass(frozen=True)
class Alarm:
    code: int | None


@dataclass(frozen=True)
class Status:
    state: str
    position: tuple[float, ...] | None = None  # MPos or WPos
    buffer: tuple[int, int] | None = None  # Bf: free planner blocks, free RX bytes


@dataclass(frozen=True)
class Banner:
    version: str


@dataclass(frozen=True)
class Setting:
    key: int
    value: float


@dataclass(frozen=True)
class Message:
    """A bracketed feedback line: ``[MSG:…]``, ``[GC:…]``, ``[VER:…]``, ``[OPT:…]`` …"""

    kind: str
    text: str


@dataclass(frozen=True)
class Noise:
    text: str


Item = Ok | Error | Alarm | Status | Banner | Setting | Message | Noise
MESSAGE_KINDS = frozenset({"MSG", "GC", "VER", "OPT", "HLP", "G54", "G55", "G56", "G57",
                           "G58", "G59", "G28", "G30", "G92", "TLO", "PRB", "echo"})


def parse(text: str) -> Item:
    """One line from GRBL (without its line ending) as an item; Noise when unrecognised."""
    try:
        return _parse(text.strip())
    except (ValueError, IndexError, OverflowError):  # belt and braces: never raise
        return Noise(text)


def _parse(text: str) -> Item:
    if text == "ok":
        return Ok()
    if text.startswith("<"):
        return _status(text)
    match = CODE.fullmatch(text)
    if match:
        code = int(match.group(2))
        return Error(code) if match.group(1) == "error" else Alarm(code)
    if text.startswith("error:") and text[6:].strip() and not text[6:].strip()[0].isdigit():
        return Error(None)  # `error: Bad number format` style: an error all the same
    match = BANNER.fullmatch(text)
    if match:
        return Banner(match.group(1))
    match = SETTING.fullmatch(text)
    if match:
        return Setting(int(match.group(1)), float(match.group(2)))
    if text.startswith("[") and text.endswith("]") and ":" in text:
        kind, _, body = text[1:-1].partition(":")
        if kind in MESSAGE_KINDS and "[" not in body and "]" not in body:
            return Message(kind, body)
    return Noise(text)


def _status(text: str) -> Item:
    if not text.endswith(">") or text.count("<") != 1 or text.count(">") != 1:
        return Noise(text)
    state, *fields = text[1:-1].split("|")
    if state not in STATES:
        return Noise(text)
    position: tuple[float, ...] | None = None
    buffer: tuple[int, int] | None = None
    seen: set[str] = set()
    for field in fields:
        name, sep, value = field.partition(":")
        pattern = FIELDS.get(name)
        if not sep or pattern is None or name in seen or not pattern.fullmatch(value):
            return Noise(text)
        seen.add(name)
        if name in ("MPos", "WPos"):
            if len(seen & {"MPos", "WPos"}) > 1:
                return Noise(text)
            position = tuple(float(v) for v in value.split(","))
        elif name == "Bf":
            blocks, rx = (int(v) for v in value.split(","))
            if blocks > 64 or rx > 256:
                return Noise(text)
            buffer = (blocks, rx)
    if "MPos" not in seen and "WPos" not in seen:
        return Noise(text)  # GRBL 1.1 always reports one of them: a field went missing
    return Status(state, position, buffer)
