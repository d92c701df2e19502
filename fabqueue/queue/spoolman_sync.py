"""With ``FABQUEUE_SPOOLMAN_URL`` set, Spoolman holds the spools: this periodic task (run by
``serve``, never by a request handler) sends each ledger row's use to Spoolman once, sends
staff's weighings, and mirrors Spoolman's spools into the ``spools`` table the pages, the
start gate and the ledger read.

Exactly once: a ledger row is sent until ``sent_at`` is set, so a Spoolman that was down gets
the use later. Spoolman has no idempotency key, so before each attempt the row keeps
Spoolman's ``used_weight`` (``spoolman_used_before``); when an answer was lost, the next round
sees whether ``used_weight`` grew by the grams and then marks the row sent instead of sending
it again. A conditional update claims each attempt, so two processes never send one row.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from fabqueue.drivers.base import DriverError, DriverOffline
from fabqueue.drivers.spoolman import RemoteSpool, Spoolman
from fabqueue.store.models import Site
from fabqueue.store.models_spools import Spool, SpoolUsage

log = logging.getLogger(__name__)

#: grams within which Spoolman's used_weight counts as having taken a use (float rounding)
LANDED_TOLERANCE_G = 0.05


def sync(ctx: Any, now: datetime) -> dict[str, Any]:
    """One round: uses, weighings, then the mirror. Spoolman away: counted, tried next round."""
    url = ctx.settings.spoolman_url
    if not url:
        return {}
    out: dict[str, Any] = {"sent": 0, "measured": 0, "pulled": 0}
    with Spoolman(url) as sm:
        try:
            out["sent"] = push_uses(ctx, sm, now)
            out["measured"] = push_measures(ctx, sm)
            out["pulled"] = pull_spools(ctx, sm, now)
        except DriverOffline as exc:
            log.warning("Spoolman is not reachable (%s); its uses wait", exc.reason)
            out["offline"] = True
    return out


def push_uses(ctx: Any, sm: Spoolman, now: datetime) -> int:
    with ctx.db.session() as s:
        rows = s.execute(select(SpoolUsage.job_id, Spool.spoolman_id, SpoolUsage.grams,
                                SpoolUsage.spoolman_used_before, SpoolUsage.send_attempts)
                         .join(Spool, Spool.id == SpoolUsage.spool_id)
                         .where(SpoolUsage.sent_at.is_(None), Spool.spoolman_id.is_not(None))
                         .order_by(SpoolUsage.at, SpoolUsage.job_id)).all()
    sent = 0
    for job_id, remote_id, grams, before, attempts in rows:
        try:
            sent += _send_one(ctx, sm, now, job_id, int(remote_id), float(grams), before,
                              int(attempts))
        except DriverOffline:
            raise
        except DriverError as exc:  # e.g. the spool was deleted in Spoolman: staff see it
            log.warning("Spoolman refused the use of job %s: %s", job_id, exc.reason)
    return sent


def _send_one(ctx: Any, sm: Spoolman, now: datetime, job_id: int, remote_id: int,
              grams: float, before: float | None, attempts: int) -> int:
    if grams <= 0:
        _mark_sent(ctx, job_id, now)
        return 0
    remote = sm.spool(remote_id)
    if before is not None and remote.used_g >= before + grams - LANDED_TOLERANCE_G:
        _mark_sent(ctx, job_id, now)  # the last attempt landed; its answer was lost
        return 1
    with ctx.db.session() as s:
        claimed = s.execute(update(SpoolUsage).where(
            SpoolUsage.job_id == job_id, SpoolUsage.sent_at.is_(None),
            SpoolUsage.send_attempts == attempts).values(
            send_attempts=attempts + 1, spoolman_used_before=remote.used_g))
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return 0  # another process is on it
    sm.use(remote_id, grams)
    _mark_sent(ctx, job_id, now)
    return 1


def _mark_sent(ctx: Any, job_id: int, now: datetime) -> None:
    with ctx.db.session() as s:
        s.execute(update(SpoolUsage).where(SpoolUsage.job_id == job_id,
                                           SpoolUsage.sent_at.is_(None)).values(sent_at=now))


def push_measures(ctx: Any, sm: Spoolman) -> int:
    with ctx.db.session() as s:
        rows = s.execute(select(Spool.id, Spool.spoolman_id, Spool.spoolman_measure_g).where(
            Spool.spoolman_id.is_not(None), Spool.spoolman_measure_g.is_not(None))).all()
    for local_id, remote_id, gross in rows:
        sm.measure(int(remote_id), float(gross))
        with ctx.db.session() as s:  # unless staff weighed it again meanwhile
            s.execute(update(Spool).where(Spool.id == local_id,
                                          Spool.spoolman_measure_g == gross)
                      .values(spoolman_measure_g=None))
    return len(rows)


def _site_of(remote: RemoteSpool, sites: list[str], current: str | None) -> tuple[str, str]:
    """The site and shelf place of a Spoolman spool: a location ``"<site>:<place>"`` (or just
    a site id) names the site; otherwise it stays where it is, or goes to the first site."""
    head, sep, rest = remote.place.partition(":")
    if head in sites:
        return head, rest.strip() if sep else ""
    return current or sites[0], remote.place


def pull_spools(ctx: Any, sm: Spoolman, now: datetime) -> int:
    remote = sm.spools()
    with ctx.db.session() as s:
        sites = list(s.scalars(select(Site.id).order_by(Site.id)))
        if not sites:
            return 0
        # uses not yet in Spoolman's numbers still count here
        pending = dict(s.execute(select(SpoolUsage.spool_id, func.sum(SpoolUsage.grams))
                                 .where(SpoolUsage.sent_at.is_(None))
                                 .group_by(SpoolUsage.spool_id)).all())
        for r in remote:
            row = s.scalar(select(Spool).where(Spool.spoolman_id == r.id))
            site, place = _site_of(r, sites, row.site_id if row else None)
            if row is None:
                row = Spool(spoolman_id=r.id, site_id=site, material=r.material)
                s.add(row)
                s.flush()
            row.site_id, row.material, row.colour, row.brand = site, r.material, r.colour, \
                r.brand
            row.lot, row.net_g, row.empty_g, row.place = r.lot, r.net_g, r.empty_g, place
            row.archived = r.archived
            if row.spoolman_measure_g is None:  # a weighing on its way wins until sent
                row.remaining_g = round(max(0.0, r.remaining_g
                                            - float(pending.get(row.id) or 0.0)), 1)
            row.updated_at = now
    return len(remote)
