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

A report may not yet show a line written after the ``?`` that asked for it (on a loaded
host several ``?`` may be on their way). Every write gets a sequence number; reports answer
the ``?``s in order (a report lost to noise only makes the match older, the safe side, until
its ``?`` is forgotten after ``REPORT_WITHIN_S``), and
"lost reply" weighs, and clears, only the lines written before the ``?`` of the first of the
two reports. (GRBL builds a report a moment after it reads the ``?``, so it may include later
lines too: "extra reply" weighs every line in flight.) Clearing a line still on its way freed
its bytes twice: the next lines overflowed GRBL's buffer and ran together (error:25).
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

RX_BUFFER_LIMIT = 127  # bytes a character-counting sender may have unacknowledged
RX_BUFFER_SIZE = 128
PLANNER_BLOCKS = 15
QUERIES_KEPT = 64  # ``?``s awaiting their report (more: reports are being lost; keep newest)
# GRBL answers a ``?`` within milliseconds; a ``?`` unanswered this long lost its report to
# noise and is forgotten, or every lost report would age the match for good
REPORT_WITHIN_S = 2.0


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
    seq: int = 0  # when it was written, among all writes (Window.next_seq)


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
        # first report's verdict, answers then, and the sequence number of its ``?``
        self._suspect: tuple[Sync, int, float] | None = None
        self.rx_size, self.planner_blocks = RX_BUFFER_SIZE, PLANNER_BLOCKS
        self._seq = 0
        self._queries: deque[tuple[int, float]] = deque(maxlen=QUERIES_KEPT)  # seq, when
        self.lost_cut: float = math.inf  # after LOST_REPLY: lines before it ran

    def next_seq(self) -> int:
        """A number for the next write (call with the writes serialised, in their order)."""
        self._seq += 1
        return self._seq

    def queried(self) -> None:
        """A ``?`` is being written now."""
        self._queries.append((self.next_seq(), time.monotonic()))

    def _report_cut(self) -> float:
        """The sequence number of the ``?`` this report answers (lines before it are in it);
        infinite when no ``?`` is tracked (every line counts, as in the unit tests)."""
        orphaned = time.monotonic() - REPORT_WITHIN_S
        while len(self._queries) > 1 and self._queries[0][1] < orphaned:
            self._queries.popleft()
        if self._queries:
            return self._queries.popleft()[0]
        return self._seq + 0.5 if self._seq else math.inf

    @property
    def used(self) -> int:
        return sum(s.line.size for s in self.sent)

    def fits(self, line: Line, window: int) -> bool:
        return self.used + line.size <= window

    def push(self, sent: Sent) -> None:
        """``sent`` is being written now."""
        sent.seq = self.next_seq()
        self.sent.append(sent)

    def answer(self) -> Sent | None:
        """The oldest line, answered; None when nothing is in flight (an extra reply)."""
        self.answers += 1
        self._suspect = None
        return self.sent.popleft() if self.sent else None

    def clear(self) -> list[Sent]:
        """Everything in flight is gone (a reset): so are the reports still asked for."""
        dropped = list(self.sent)
        self.sent.clear()
        self._suspect = None
        self._queries.clear()
        return dropped

    def clear_lost(self) -> list[Sent]:
        """After LOST_REPLY: the lines written before the first report's ``?`` (they ran;
        the lines after them are still on their way and keep their place)."""
        lost: list[Sent] = []
        while self.sent and self.sent[0].seq < self.lost_cut:
            lost.append(self.sent.popleft())
        return lost

    def on_status(self, state: str, buffer: tuple[int, int]) -> Sync:
        """The verdict of this report, confirmed by the previous one; IN_STEP until then."""
        cut = self._report_cut()
        if self._suspect is not None:
            cut = min(cut, self._suspect[2])  # only what both reports saw
        oldest = self.sent[0].line.size if self.sent else 0
        verdict = judge(state, buffer, self.used, oldest, rx_size=self.rx_size,
                        planner_blocks=self.planner_blocks)
        if verdict is Sync.LOST_REPLY:
            # GRBL builds the report a moment after it reads the ``?`` (lines written since
            # may be in its Bf:, so "more than counted" weighs every line in flight), but
            # "all ran" holds only for the lines surely written before that ``?``
            seen = sum(s.line.size for s in self.sent if s.seq < cut)
            verdict = judge(state, buffer, seen, rx_size=self.rx_size,
                            planner_blocks=self.planner_blocks)
            verdict = verdict if verdict is Sync.LOST_REPLY else Sync.IN_STEP
        if verdict is Sync.IN_STEP:
            self._suspect = None
            return verdict
        if self._suspect is not None and self._suspect[:2] == (verdict, self.answers):
            self._suspect = None
            self.lost_cut = cut
            return verdict
        self._suspect = (verdict, self.answers, cut)
        return Sync.IN_STEP
