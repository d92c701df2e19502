"""The print a host driver started (or re-attached to), and how it ended.

Moonraker, PrusaLink and Bambu printers report the state of whatever they print; only the
driver knows which print is ours. The rules for when ours has ended are the same for all
three: an end state under our name ends it (as cancelled if we asked for that); once it has
run, or after a grace period, anything else means the host restarted or printed something
else, and ours is lost (interrupted, never started again).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from fabqueue.drivers.base import Outcome

#: After an upload a host may still show the previous state (Klippy "standby", PrusaLink no
#: job or a 404, Bambu IDLE) for a moment; only after this long is "not ours" a lost print.
START_GRACE_S = 10.0


@dataclass
class TrackedPrint:
    name: str | None = None  # the host's name for our print (its file name or path)
    started_at: float = 0.0
    seen_running: bool = False
    cancelled: bool = False
    outcome: Outcome | None = None  # kept until the next start

    def start(self, name: str, *, running: bool = False) -> None:
        """Track ``name`` from now on; ``running`` when re-attaching to a running print."""
        self.name = name
        self.started_at = time.monotonic()
        self.seen_running = running
        self.cancelled = False
        self.outcome = None

    def ours(self, name: str | None) -> bool:
        return self.name is not None and name == self.name

    def ended(self, state: str, ours: bool, *, ended: Mapping[str, Outcome],
              active: Collection[str]) -> Outcome | None:
        """How our print ended, once it has, given the host's ``state`` text and whether the
        host shows our print (``ended`` maps end states to outcomes; ``active`` lists the
        states in which a print is still going)."""
        if self.outcome is not None or self.name is None:
            return self.outcome
        if ours and state in ended:
            self.outcome = Outcome.CANCELLED if self.cancelled else ended[state]
        elif ours and state in active:
            return None
        elif self.cancelled:
            self.outcome = Outcome.CANCELLED
        elif self.seen_running or time.monotonic() - self.started_at > START_GRACE_S:
            self.outcome = Outcome.INTERRUPTED
        return self.outcome
