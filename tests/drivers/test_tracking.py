"""The rules the host drivers share for when our print has ended (drivers.tracking)."""

from __future__ import annotations

import pytest

from fabqueue.drivers import tracking
from fabqueue.drivers.base import Outcome
from fabqueue.drivers.tracking import TrackedPrint

ENDED = {"done": Outcome.DONE, "stopped": Outcome.CANCELLED, "error": Outcome.FAILED}
ACTIVE = ("printing", "paused")


def ended(p: TrackedPrint, state: str, ours: bool) -> Outcome | None:
    return p.ended(state, ours, ended=ENDED, active=ACTIVE)


def test_nothing_tracked_never_ends() -> None:
    assert ended(TrackedPrint(), "done", True) is None


def test_an_end_under_our_name_is_kept_until_the_next_start() -> None:
    p = TrackedPrint()
    p.start("a.gcode")
    assert ended(p, "printing", True) is None
    assert ended(p, "done", True) is Outcome.DONE
    assert ended(p, "printing", False) is Outcome.DONE  # another print later: still ours done
    p.start("b.gcode")
    assert p.outcome is None and not p.seen_running


def test_a_stop_we_asked_for_is_cancelled_whatever_the_host_calls_it() -> None:
    p = TrackedPrint()
    p.start("a.gcode")
    p.cancelled = True
    assert ended(p, "error", True) is Outcome.CANCELLED


def test_gone_after_running_is_interrupted_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    p = TrackedPrint()
    p.start("a.gcode", running=True)
    assert ended(p, "idle", False) is Outcome.INTERRUPTED


def test_not_shown_yet_waits_for_the_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(tracking.time, "monotonic", lambda: now[0])
    p = TrackedPrint()
    p.start("a.gcode")
    assert ended(p, "idle", False) is None  # the host may still show the previous state
    now[0] += tracking.START_GRACE_S + 0.1
    assert ended(p, "idle", False) is Outcome.INTERRUPTED
