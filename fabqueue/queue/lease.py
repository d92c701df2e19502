"""One driver per machine: the device worker's lease on its machine, with a fencing token.

A worker takes the lease before it touches the machine and renews it every third of its
time to live. A second worker for the same machine (an orphan of an earlier ``serve``, a
restarted child) waits, says so, and takes over only when the lease has expired. Taking it
increments the machine's ``fencing_token``; every device or job write of a worker goes
through :meth:`Lease.fence` in the same transaction, which refuses it (rolls it back) when
the token is no longer the current one: a worker that was paused past its lease cannot undo
what the new holder did. It then stops driving (closes its link, never cancels the print) and
goes back to waiting.

Renewal does not wait for the driving loop to come round: a keeper thread renews while the
loop is busy in one long step (an upload of a large program over Wi-Fi, a slow database on a
loaded host), so a live worker never loses its machine to a waiting one mid-step. The keeper
renews only while the loop has come round within ``stall_s``: a loop stuck for longer is hung,
and its lease lapses so that another worker can take over. A paused process (SIGSTOP, a
suspended VM) renews nothing, keeper included.

Expiry is set and compared by the database's clock (:mod:`fabqueue.store.leases`), so a
``device-worker`` on another computer may run with its clock off by any amount: it neither
takes a live lease nor keeps a lapsed one. Renewal is paced by each worker's monotonic clock
(every third of the time to live), which tolerates clocks running at different rates by far
more than any real computer's drift.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from fabqueue.store import leases
from fabqueue.store.db import Database

log = logging.getLogger(__name__)


class LeaseLost(Exception):
    """Another worker holds this machine's lease now: stop driving it."""


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass
class Lease:
    db: Database
    device_id: str
    ttl_s: float = 15.0
    owner: str = field(default_factory=default_owner)
    stall_s: float = 600.0  # a loop not back within this is hung: the keeper lets go
    token: int | None = None
    _renewed: float = 0.0
    _alive: float = 0.0
    _told_waiting: bool = False
    _keeper: threading.Thread | None = None
    _closing: threading.Event = field(default_factory=threading.Event)

    @property
    def held(self) -> bool:
        return self.token is not None

    @property
    def retry_s(self) -> float:
        """How often a waiting worker tries again (and a holder renews)."""
        return max(0.2, min(self.ttl_s / 3, 5.0))

    def acquire(self) -> bool:
        with self.db.session() as s:
            token = leases.try_acquire(s, self.device_id, self.owner, self.ttl_s)
            if token is None:
                holder, until, _ = leases.holder(s, self.device_id)
        if token is None:
            if not self._told_waiting:
                log.info("%s: waiting: the machine is driven by %s (lease until %s)",
                         self.device_id, holder, until)
                self._told_waiting = True
            return False
        self.token, self._renewed, self._told_waiting = token, time.monotonic(), False
        log.info("%s: lease taken by %s (token %s)", self.device_id, self.owner, token)
        return True

    def fence(self, session: Session, **values: Any) -> None:
        """Write ``values`` to the machine's row (and extend the lease) in ``session``'s
        transaction, or raise :class:`LeaseLost` (the caller's transaction rolls back)."""
        if self.token is None:
            raise LeaseLost(self.device_id)
        if not leases.fenced_update(session, self.device_id, self.token,
                                    extend_s=self.ttl_s, **values):
            self.lost()
        self._renewed = time.monotonic()

    def renew_if_due(self) -> None:
        if self.token is not None and time.monotonic() - self._renewed >= self.retry_s:
            with self.db.session() as s:
                self.fence(s)

    def alive(self) -> None:
        """The driving loop came round: the keeper may go on renewing."""
        self._alive = time.monotonic()

    def since_alive(self) -> float:
        """Seconds since the driving loop last came round (a watchdog's question)."""
        return time.monotonic() - self._alive

    def keep(self) -> None:
        """Start the keeper thread (once): it renews a held lease every ``retry_s`` while
        the loop calls :meth:`alive` at least every ``stall_s``."""
        self.alive()
        if self._keeper is None:
            self._closing.clear()
            self._keeper = threading.Thread(target=self._keep, name=f"lease-{self.device_id}",
                                            daemon=True)
            self._keeper.start()

    def _keep(self) -> None:
        while not self._closing.wait(self.retry_s / 2):
            token = self.token
            now = time.monotonic()
            if token is None or now - self._alive > self.stall_s \
                    or now - self._renewed < self.retry_s:
                continue  # not ours, hung, or a write of the loop renewed it lately
            try:
                with self.db.session() as s:
                    if leases.fenced_update(s, self.device_id, token, extend_s=self.ttl_s):
                        self._renewed = time.monotonic()
                # a stale token: the loop finds out at its next write (LeaseLost) and stops
            except Exception:  # the database away for a moment: the next round tries again
                log.debug("%s: lease renewal failed", self.device_id, exc_info=True)

    def lost(self) -> None:
        log.warning("%s: lease lost (token %s is stale): another worker drives the machine; "
                    "this one stops driving it", self.device_id, self.token)
        self.token = None
        raise LeaseLost(self.device_id)

    def release(self) -> None:
        self._closing.set()
        if self._keeper is not None:
            self._keeper.join(timeout=10)
            self._keeper = None
        if self.token is None:
            return
        try:
            with self.db.session() as s:
                leases.release(s, self.device_id, self.token)
        except Exception:  # the database away at shutdown: the lease just expires
            log.debug("lease release failed", exc_info=True)
        self.token = None
