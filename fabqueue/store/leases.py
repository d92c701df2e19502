"""Machine leases in the database: each statement is one conditional UPDATE of a device row.

The database is the truth about who drives a machine, for the same reason it is the truth
about jobs: it survives a dead Redis, and the fence (``fencing_token``) can be checked in the
same transaction as the job change it guards. On PostgreSQL the UPDATE takes the row's lock,
so an acquisition waits for a holder's write in flight and then re-reads the token; SQLite
serialises writers anyway.

Expiry is set and compared with the database's clock, never a worker's: a ``device-worker``
on another computer whose clock is off would otherwise take a live lease (its clock ahead)
or keep a lapsed one (behind). One clock decides, so skew between workers doesn't matter;
what a lease still assumes is that the clocks *run* at the same rate over one time to live
(the holder renews every third of it by its own monotonic clock). On SQLite every worker
shares the file, hence the computer and its clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import Session

from fabqueue.store.models import Device


def db_now(session: Session, plus_s: float = 0.0) -> ColumnElement[datetime]:
    """The database's current time (plus ``plus_s``), as SQL evaluated by the database."""
    if session.get_bind().dialect.name == "sqlite":
        # the text SQLAlchemy stores for a UTC datetime, microseconds included ("%f" gives
        # milliseconds), so that stored and computed values compare as strings
        return func.strftime("%Y-%m-%d %H:%M:%f000", "now", f"{plus_s:+.3f} seconds")
    # clock_timestamp(): now, not the start of the transaction (now() is that)
    return func.clock_timestamp() + timedelta(seconds=plus_s)


def try_acquire(session: Session, device_id: str, owner: str, ttl_s: float) -> int | None:
    """Take the lease if it is free, expired or already ours; the new token, or None."""
    res = session.execute(
        update(Device)
        .where(Device.id == device_id,
               or_(Device.lease_owner.is_(None), Device.lease_expires_at.is_(None),
                   Device.lease_expires_at < db_now(session), Device.lease_owner == owner))
        .values(lease_owner=owner, lease_expires_at=db_now(session, ttl_s),
                fencing_token=Device.fencing_token + 1)
        .execution_options(synchronize_session=False))
    if res.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return session.scalar(select(Device.fencing_token).where(Device.id == device_id))


def fenced_update(session: Session, device_id: str, token: int, *,
                  extend_s: float | None = None, **values: Any) -> bool:
    """Write ``values`` to the device only while ``token`` is the current one; with
    ``extend_s``, the lease then runs until the database's now + ``extend_s``."""
    if extend_s is not None:
        values["lease_expires_at"] = db_now(session, extend_s)
    res = session.execute(
        update(Device).where(Device.id == device_id, Device.fencing_token == token)
        .values(**values).execution_options(synchronize_session=False))
    return res.rowcount == 1  # type: ignore[attr-defined]


def release(session: Session, device_id: str, token: int) -> bool:
    """Give the lease up (a clean stop): the next worker need not wait for the expiry."""
    return fenced_update(session, device_id, token, lease_owner=None, lease_expires_at=None)


def holder(session: Session, device_id: str) -> tuple[str | None, datetime | None, int]:
    row = session.execute(select(Device.lease_owner, Device.lease_expires_at,
                                 Device.fencing_token).where(Device.id == device_id)).one()
    return row[0], row[1], int(row[2] or 0)
