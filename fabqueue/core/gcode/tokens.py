"""Split one G-code line into words the way firmware reads it, not the way it looks.

``N10 G1X999Y999*17`` is three words to a printer: spaces are optional, letters may be lower
case, ``N`` numbers and ``*`` checksums frame the line, ``;`` ends it and ``( … )`` is a
comment. Anything a firmware might read differently from us (``#`` parameters, ``$`` system
commands, an unclosed comment, a letter without a number) is an error, never skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fabqueue.core.findings import N_

# A letter and its number; Marlin also takes a bare letter as a flag (``G28 X Y``).
WORD_RE = re.compile(r"([A-Z])[ \t]*([-+]?(?:\d+\.?\d*|\.\d+))?[ \t]*", re.ASCII)
WORDS_RE = re.compile(r"[ \t]*(?:[A-Z][ \t]*(?:[-+]?(?:\d+\.?\d*|\.\d+))?[ \t]*)*",
                      re.ASCII)
CHECKSUM_RE = re.compile(r"\*[ \t]*\d+[ \t]*$", re.ASCII)
PAREN_RE = re.compile(r"\([^()]*\)")
# Commands whose argument is free text to the end of the line (Marlin).
TEXT_COMMANDS = frozenset({"M117", "M118"})
TEXT_COMMAND_RE = re.compile(r"[ \t]*(?:N[ \t]*\d+[ \t]*)?(M[ \t]*0*11[78])(?![\d.])(.*)$",
                             re.ASCII)


class TokenError(ValueError):
    """The line can't be read as plain words; ``text`` is an English template with ``{line}``
    and ``{gcode}`` (the line as written), marked for translation."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


@dataclass(frozen=True)
class Line:
    words: tuple[tuple[str, float, str], ...]  # (letter, value, number as written or "")
    text: str | None = None  # the free text of M117/M118


def command_name(letter: str, written: str) -> str:
    """``G01`` → ``G1``, ``M862.3`` stays, ``G1.0`` → ``G1``: the name a firmware matches."""
    whole, _, fraction = written.lstrip("+").partition(".")
    whole = whole.lstrip("0") or "0"
    fraction = fraction.rstrip("0")
    return f"{letter}{whole}.{fraction}" if fraction else f"{letter}{whole}"


def strip_comments(raw: str, *, paren_comments: bool) -> str:
    code = raw.split(";", 1)[0]
    if not paren_comments:
        # Marlin reads letters inside "( )" as words: such a "comment" could hide a move.
        if "(" in code or ")" in code:
            raise TokenError(N_("Line {line}: this printer does not read ( ) comments, so it "
                                "might read what is inside them: {gcode}"))
        return code
    code = PAREN_RE.sub(" ", code)
    if "(" in code or ")" in code:
        raise TokenError(N_("Line {line}: a comment in ( ) is not closed or is nested: {gcode}"))
    return code


def tokenize(raw: str, *, paren_comments: bool = True) -> Line:
    """The words of one line (empty for a blank or comment-only line).

    ``paren_comments``: the machine's firmware skips ``( … )`` (GRBL); when False (Marlin),
    a parenthesis is an error."""
    code = raw.rstrip("\r\n")
    text_match = TEXT_COMMAND_RE.match(code.upper())
    if text_match:
        return Line((("M", float(text_match.group(1)[1:].strip()),
                      text_match.group(1)[1:].strip()),), code[text_match.start(2):])
    code = strip_comments(code, paren_comments=paren_comments)
    if not code.isascii():
        # Python reads "X１０" as X10 and upper-cases "ſ" to S; a firmware reads bytes.
        raise TokenError(N_("Line {line} has characters outside plain ASCII: {gcode}"))
    code = CHECKSUM_RE.sub("", code)
    if "*" in code:
        raise TokenError(N_("Line {line}: a checksum (*) in the middle of the line: {gcode}"))
    code = code.upper()
    if code.strip() == "%":  # program start/end marker, ignored by firmware
        return Line(())
    if not WORDS_RE.fullmatch(code):
        raise TokenError(N_("Line {line} is not made of G-code words (a letter and a "
                            "number): {gcode}"))
    words = tuple((letter, float(number or 0), number)
                  for letter, number in WORD_RE.findall(code))
    if any(not number and letter in "GMTN" for letter, _, number in words):
        raise TokenError(N_("Line {line}: a command letter without its number: {gcode}"))
    if words and words[0][0] == "N":
        words = words[1:]
    if any(letter == "N" for letter, _, _ in words):
        raise TokenError(N_("Line {line}: a line number (N) that is not at the start: {gcode}"))
    return Line(words)
