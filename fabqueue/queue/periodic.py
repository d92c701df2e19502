"""Periodic work that ``serve`` runs on a schedule: reminders, expiring trainings, the purge.

Each task is idempotent (a missed or doubled run is harmless: it decides from the database
what is due *now*, and records what it did), so the schedule lives only in this process:
a restarted ``serve`` simply runs every task once at start and then on its interval.
A task that raises is logged and tried again at its next turn; it never stops the others.

Register a task by adding it to ``TASKS`` (one line per domain). ``run_due`` is also what
tests call, with a faked clock, instead of waiting.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Periodic:
    name: str
    every_s: float
    # called with the queue Context and the current time (UTC, aware); returns counts to log
    run: Callable[[Any, datetime], Any]


def _tasks() -> list[Periodic]:
    """The registered tasks, imported late so that this module stays import-light."""
    tasks: list[Periodic] = []
    from fabqueue.store.retention import run_periodic as purge

    tasks.append(Periodic("privacy:purge", 24 * 3600, purge))
    # Domains add their task here, e.g.:
    # from fabqueue.queue.pickup_reminders import remind
    # tasks.append(Periodic("pickup:remind", 15 * 60, remind))
    from fabqueue.notify import sender
    from fabqueue.queue import pickup

    tasks.append(Periodic("pickup:remind", 15 * 60, pickup.remind))
    tasks.append(Periodic("notify:deliver", 20, sender.deliver))  # every tick of the loop
    from fabqueue.queue.trainings_notify import notify_due

    tasks.append(Periodic("trainings:notify", 15 * 60, notify_due))  # lapsing, maintenance
    from fabqueue.queue.spoolman_sync import sync as spoolman_sync

    # with FABQUEUE_SPOOLMAN_URL: uses sent once, weighings, the mirror (else it does nothing)
    tasks.append(Periodic("spoolman:sync", 30, spoolman_sync))
    return tasks


def run_due(ctx: Any, now: datetime, last: dict[str, datetime]) -> dict[str, Any]:
    """Run every task whose interval has passed since its last run (all of them the first
    time); ``last`` is updated in place. Returns each run task's result by name."""
    results: dict[str, Any] = {}
    for task in _tasks():
        prev = last.get(task.name)
        if prev is not None and (now - prev).total_seconds() < task.every_s:
            continue
        last[task.name] = now
        try:
            results[task.name] = task.run(ctx, now)
        except Exception:
            log.exception("periodic task %s failed; it runs again at its next turn", task.name)
    return results


def start(ctx: Any, stop: threading.Event, tick_s: float = 30.0) -> threading.Thread:
    """A daemon thread that runs due tasks every ``tick_s`` until ``stop`` is set."""

    def loop() -> None:
        last: dict[str, datetime] = {}
        while not stop.is_set():
            run_due(ctx, datetime.now(UTC), last)
            stop.wait(tick_s)

    t = threading.Thread(target=loop, name="periodic", daemon=True)
    t.start()
    return t
