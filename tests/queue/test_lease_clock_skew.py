"""Leases across computers: a ``device-worker`` may run on another host whose clock is off.
Expiry is set and compared by the database's clock, so a worker whose wall clock is an hour
ahead does not take a live lease, and one whose clock is an hour behind does not keep a
lapsed one (issue 19). Runs on SQLite and, on the external pass, on PostgreSQL.

The skew: the lease code's view of the wall clock (``datetime`` in fabqueue.queue.lease and
fabqueue.store.leases, which the lease used to read) is shifted while one worker acts; no
clock of the database or of the test changes."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from fabqueue.queue import lease as lease_module
from fabqueue.queue.lease import Lease, LeaseLost
from fabqueue.store import leases as store_leases
from tests.conftest import Stack, wait_for
from tests.queue.helpers import new_site, printer
from tests.queue.lease_procs import lease_row

HOUR = 3600.0


def skewed(seconds: float) -> type[datetime]:
    class Skewed(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[no-untyped-def, override]
            return datetime.now(tz) + timedelta(seconds=seconds)

    return Skewed


@contextlib.contextmanager
def clock_off(monkeypatch: pytest.MonkeyPatch, seconds: float) -> Iterator[None]:
    """This worker's wall clock is ``seconds`` off while it acts."""
    with monkeypatch.context() as m:
        for module in (lease_module, store_leases):
            m.setattr(module, "datetime", skewed(seconds), raising=False)
        yield


def test_a_skewed_worker_neither_steals_nor_keeps_a_lease(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    dev = f"skew-{secrets.token_hex(3)}"
    new_site(stack, [printer(dev, ["PLA"])])
    a = Lease(stack.ctx.db, dev, ttl_s=3.0, owner="a-behind")
    b = Lease(stack.ctx.db, dev, ttl_s=3.0, owner="b-ahead")
    with clock_off(monkeypatch, -HOUR):
        assert a.acquire()
    # stored by the database's clock: the time to live from now, not from a's clock
    until = lease_row(stack, dev)["lease_expires_at"]
    until = until if until.tzinfo else until.replace(tzinfo=UTC)  # SQLite keeps no zone
    left = (until - datetime.now(UTC)).total_seconds()
    assert 0 < left <= 3.0 + 1.0, until
    with clock_off(monkeypatch, +HOUR):
        assert not b.acquire()  # an hour ahead, b still sees a live lease
    a_token = a.token
    assert a_token is not None
    with clock_off(monkeypatch, -HOUR), stack.ctx.db.session() as s:
        a.fence(s, state="busy")  # a renews: its lease runs on, by the database's clock
    with clock_off(monkeypatch, +HOUR):
        assert not b.acquire()
    # a stops renewing (paused). b, now an hour behind, takes over once the lease lapses
    # by the database's clock (with b's own clock it would wait an hour)
    with clock_off(monkeypatch, -HOUR):
        wait_for(b.acquire, timeout=30, interval=0.2, what="b to take the lapsed lease")
    assert b.token == a_token + 1
    with clock_off(monkeypatch, +HOUR), pytest.raises(LeaseLost), \
            stack.ctx.db.session() as s:
        a.fence(s, state="idle")  # a, an hour ahead, can't write past its lapsed lease
    assert lease_row(stack, dev)["lease_owner"] == "b-ahead"
    b.release()
