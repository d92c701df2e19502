"""Character counting: which lines GRBL holds unanswered, and whether our count is right.

GRBL has a 128-byte receive buffer; the sender keeps the sum of (line + newline) of the
lines not yet answered ≤ 127 and sends the next line as soon as it fits. Every ``ok`` /
``error`` answers the oldest line. A reply lost on the line (noise) leaves its bytes counted
for ever; a reply that appears from noise frees bytes GRBL still holds. The status report's
``Bf:`` field (``$10`` with bit 2) says how many RX bytes GRBL has free, which tells both:

- lost reply: GRBL is Idle with an empty RX buffer and a drained planner, yet lines are
  still counted as in flight → they all ran; their replies are never coming.
- extra reply: GRBL holds more bytes than we count as in flight → an ``ok`` freed bytes
  that are still there; the next line could overflow the buffer. GRBL reports while it
  waits (for planner room, a dwell, a sync), which it does on the oldest unanswered line,
  already out of its RX buffer: so when the RX buffer isn't empty, RX bytes + that line ≤
  our count, or a reply was made up.

A verdict needs two consecutive reports that agree, with no reply in between: one garbled
report that still parses must not move the count.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

RX_BUFFER_LIMIT = 127  # bytes a character-counting sender may have unacknowledged
RX_BUFFER_SIZE = 128
PLANNER_BLOCKS = 15


@dataclass
class Line:
    number: int  # line number in the program (1-based), for messages
    text: str  # as sent, without comment

    @property
    def size(self) -> int:
        return len(self.text) + 1


@dataclass
class Sent:
    """A line waiting for its ``ok``/``error:N``; informational replies gather in ``lines``."""

    line: Line
    counted: bool  # part of a job (progress counts it)
    lines: list[str] = field(default_factory=list)
    answer: str | None = None


class Sync(StrEnum):
    IN_STEP = "in_step"
    LOST_REPLY = "lost_reply"
    EXTRA_REPLY = "extra_reply"


def judge(state: str, buffer: tuple[int, int], in_flight_bytes: int, oldest_bytes: int = 0,
          *, rx_size: int = RX_BUFFER_SIZE, planner_blocks: int = PLANNER_BLOCKS) -> Sync:
    """One status report's verdict on our count (pure); ``oldest_bytes``: the size of the
    oldest line we count as unanswered (the one GRBL works on while bytes wait)."""
    blocks_free, rx_free = buffer
    rx_used = rx_size - rx_free
    if rx_used and rx_used + oldest_bytes > in_flight_bytes:
        return Sync.EXTRA_REPLY
    if state == "Idle" and rx_used == 0 and blocks_free >= planner_blocks and in_flight_bytes:
        return Sync.LOST_REPLY
    return Sync.IN_STEP


class Window:
    """The lines sent and not yet answered, oldest first, and the verdicts on them."""

    def __init__(self) -> None:
        self.sent: deque[Sent] = deque()
        self.answers = 0  # replies taken so far (a verdict must see none between reports)
        self._suspect: tuple[Sync, int] | None = None  # first report's verdict, answers then
        self.rx_size, self.planner_blocks = RX_BUFFER_SIZE, PLANNER_BLOCKS

    @property
    def used(self) -> int:
        return sum(s.line.size for s in self.sent)

    def fits(self, line: Line, window: int) -> bool:
        return self.used + line.size <= window

    def push(self, sent: Sent) -> None:
        self.sent.append(sent)

    def answer(self) -> Sent | None:
        """The oldest line, answered; None when nothing is in flight (an extra reply)."""
        self.answers += 1
        self._suspect = None
        return self.sent.popleft() if self.sent else None

    def clear(self) -> list[Sent]:
        dropped = list(self.sent)
        self.sent.clear()
        self._suspect = None
        return dropped

    def on_status(self, state: str, buffer: tuple[int, int]) -> Sync:
        """The verdict of this report, confirmed by the previous one; IN_STEP until then."""
        oldest = self.sent[0].line.size if self.sent else 0
        verdict = judge(state, buffer, self.used, oldest, rx_size=self.rx_size,
                        planner_blocks=self.planner_blocks)
        if verdict is Sync.IN_STEP:
            self._suspect = None
            return verdict
        if self._suspect == (verdict, self.answers):
            self._suspect = None
            return verdict
        self._suspect = (verdict, self.answers)
        return Sync.IN_STEP
