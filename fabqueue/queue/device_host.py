"""The device host: one process drives many machines, one thread each.

A ``fabqueue device-worker`` process costs ~70 MB however little its machine does; here every
machine is a :class:`~fabqueue.queue.device_worker.DeviceWorker` in a thread of its own, with
everything it has in its own process: its lease and fencing token (and the lease's keeper
thread), its interlocks, its reconnects. What they share is thread-safe: the SQLAlchemy
engine (a session per use), the Redis client's connection pool (a blocking ``control.take``
holds one connection per machine; the pool opens as many as asked), the events publisher.

The host follows the database like ``serve`` does for worker processes: a machine enabled or
added gets a thread within seconds, one disabled or removed has its thread stopped. A watchdog
looks after each thread. One that died is started again (with back-off, so a machine whose
worker cannot start does not spin). One whose loop has not come round (:meth:`Lease.alive`)
within ``stall_s`` is hung (a driver stuck in a call without a deadline): its lease's keeper
has stopped renewing by the same rule, so the lease lapses, and a fresh worker for the machine
takes it over after expiry with a new fencing token. The hung thread is told to stop; should
it ever wake, its next write is refused (:class:`LeaseLost`) and it ends without touching the
machine again. Python cannot kill a thread: a hung one stays until it returns.

Killing the host is what killing a device worker was, for every machine at once: the leases
lapse, and the next host (or device worker) re-attaches to what each machine runs by the
job's name, so nothing is printed twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fabqueue.core.restarts import after_death
from fabqueue.queue.context import Context
from fabqueue.queue.device_worker import (
    DeviceWorker,
    device_worker_children,
    enabled_device_ids,
)

log = logging.getLogger(__name__)

SYNC_EVERY_S = 5.0  # the machines in the database are looked at again this often
WATCH_EVERY_S = 0.5


@dataclass
class Slot:
    """One machine's thread and what the watchdog knows about it."""

    device_id: str
    worker: DeviceWorker | None = None
    thread: threading.Thread | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    failures: int = 0
    started_at: float = 0.0
    retry_at: float = 0.0
    #: workers given up as hung, still blocked in their driver (kept to be told to stop)
    hung: list[tuple[DeviceWorker, threading.Thread]] = field(default_factory=list)


class DeviceHost:
    """Drives the enabled machines (of ``site``, or all) until :meth:`run`'s ``stop``."""

    def __init__(self, ctx: Context, *, site: str | None = None, stall_s: float | None = None,
                 poll_s: float = 1.0,
                 make_worker: Callable[[Context, str], DeviceWorker] | None = None) -> None:
        self.ctx = ctx
        self.site = site
        self.stall_s = stall_s if stall_s is not None else ctx.settings.machine_stall_s
        self.poll_s = poll_s
        self.make_worker = make_worker or (lambda c, d: DeviceWorker(c, d, poll_s=poll_s))
        self.slots: dict[str, Slot] = {}
        self.restarts = 0  # workers started again after a death or a hang (for tests, logs)

    # -- the machines ---------------------------------------------------------------------
    def sync(self) -> None:
        """Threads for the machines enabled now; none for the rest."""
        try:
            wanted = set(enabled_device_ids(self.ctx, self.site))
        except Exception:  # the database busy or away for a moment: the next round
            log.warning("device list unavailable; trying again", exc_info=True)
            return
        for device_id in sorted(wanted - self.slots.keys()):
            slot = self.slots[device_id] = Slot(device_id)
            self._start(slot)
        for device_id in sorted(self.slots.keys() - wanted):
            self._stop_slot(self.slots.pop(device_id), join_s=10.0)
            log.info("%s: stopped: the machine was removed or disabled", device_id)

    def _start(self, slot: Slot) -> None:
        slot.stop = threading.Event()
        slot.started_at = time.monotonic()
        slot.worker = None
        slot.thread = threading.Thread(target=self._drive, args=(slot, slot.stop),
                                       name=f"device-{slot.device_id}", daemon=True)
        slot.thread.start()

    def _drive(self, slot: Slot, stop: threading.Event) -> None:
        # The worker is built in its thread: a machine whose row cannot be read (the
        # database away) is a thread that ended, retried with back-off, not a host that fails.
        try:
            worker = self.make_worker(self.ctx, slot.device_id)
            worker.lease.stall_s = self.stall_s  # the keeper lets go when the watchdog does
            worker.lease.alive()  # not hung before its loop has even started
            if stop.is_set():
                return
            slot.worker = worker
            log.info("%s: driving in this host", slot.device_id)
            worker.run(stop)
        except BaseException:  # SystemExit too ("no device"): this machine's thread only
            log.exception("%s: its worker failed", slot.device_id)

    # -- the watchdog ---------------------------------------------------------------------
    def watch(self) -> None:
        now = time.monotonic()
        for slot in list(self.slots.values()):
            slot.hung = [(w, t) for w, t in slot.hung if t.is_alive()]
            thread, worker = slot.thread, slot.worker
            if thread is None:
                continue
            if not thread.is_alive():
                self._after_death(slot, now)
            elif worker is not None and worker.lease.since_alive() > self.stall_s:
                log.error("%s: its loop has not come round for %.0f s (a driver call that "
                          "does not return): its lease lapses and a fresh worker takes over",
                          slot.device_id, worker.lease.since_alive())
                slot.stop.set()  # should it ever wake, it ends (fenced if it writes)
                slot.hung.append((worker, thread))
                self.restarts += 1
                self._start(slot)

    def _after_death(self, slot: Slot, now: float) -> None:
        if slot.retry_at == 0.0:
            slot.failures, delay = after_death(now - slot.started_at, slot.failures)
            slot.retry_at = now + delay
            log.warning("%s: its worker thread ended; starting it again in %.0f s",
                        slot.device_id, delay)
        if now >= slot.retry_at:
            slot.retry_at = 0.0
            self.restarts += 1
            self._start(slot)

    def _stop_slot(self, slot: Slot, join_s: float) -> None:
        slot.stop.set()
        if slot.thread is not None:
            slot.thread.join(timeout=join_s)

    # -- the host -------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        last_sync = -SYNC_EVERY_S
        try:
            while not stop.is_set():
                now = time.monotonic()
                if now - last_sync >= SYNC_EVERY_S:
                    last_sync = now
                    self.sync()
                self.watch()
                stop.wait(WATCH_EVERY_S)
        finally:
            self.shutdown()

    def shutdown(self, join_s: float = 6.0) -> None:
        """Every worker stops and releases its lease (a hung one cannot: it lapses)."""
        for slot in self.slots.values():
            slot.stop.set()
        deadline = time.monotonic() + join_s
        for slot in self.slots.values():
            if slot.thread is not None:
                slot.thread.join(timeout=max(0.0, deadline - time.monotonic()))


def device_children(sup: Any, ctx: Context) -> None:
    """``serve``'s machine workers: one device host for all (it follows the database
    itself), or with ``FABQUEUE_MACHINES_IN_ONE_PROCESS=false`` one device-worker process each."""
    if not ctx.settings.machines_in_one_process:
        device_worker_children(sup, ctx)
        return
    sup.add_child("device-host", "device-host")


def run_device_host(ctx: Context, site: str | None = None) -> None:
    import signal

    stop = threading.Event()
    # signals reach the main thread only: the machines' threads are told through ``stop``
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    from fabqueue.store.db import Database

    # every machine's loop and lease keeper takes a connection at times: none may wait for
    # another machine's (a pool's limit would make one slow machine slow them all)
    ctx.__dict__["db"] = Database(ctx.settings.sqlalchemy_url, max_overflow=-1)
    ctx.install_publisher()
    DeviceHost(ctx, site=site).run(stop)
