"""The device worker's own row and state, shared by its parts (``claiming``, ``interlocks``,
``watching``; :mod:`fabqueue.queue.device_worker` puts them together)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from rq import Queue

from fabqueue import events
from fabqueue.core.devices import DeviceState
from fabqueue.drivers.base import Driver
from fabqueue.queue import names
from fabqueue.queue.context import Context
from fabqueue.queue.laser_ops import FrameTracker
from fabqueue.queue.lease import Lease
from fabqueue.store.models import Device

log = logging.getLogger("fabqueue.queue.device_worker")

RETRY_OFFLINE_S = 5.0  # a machine that could not be reached is tried again after this


class DeviceWorkerBase:
    def __init__(self, ctx: Context, device_id: str, *, poll_s: float = 1.0) -> None:
        self.ctx = ctx
        self.device_id = device_id
        self.poll_s = poll_s
        self.driver: Driver | None = None
        self.job_id: int | None = None
        self.stopped_by_operator = False
        self.last_progress_write = 0.0
        self.ending_soon = False
        self._offline_until = 0.0
        self.frames = FrameTracker()  # lasers: a frame run, a start held until it ends
        self._started_at_before: dict[int, datetime | None] = {}
        self.lease = Lease(ctx.db, device_id, ttl_s=ctx.settings.lease_ttl_s,
                           stall_s=ctx.settings.machine_stall_s)
        with ctx.db.session() as s:
            d = s.get(Device, device_id)
            if d is None:
                raise SystemExit(f"no device {device_id}")
            self.kind = d.kind
            self.site = d.site_id
            self.pool = names.pool_queue(d.site_id, d.printer_class or d.kind)
            self.own = names.device_queue(d.id)

    def queued(self) -> bool:
        """Any entry on the machine's own queue or its pool (one round trip): without one
        there is nothing to pick, so no query of the jobs, the heating or fair shares."""
        prefix = Queue.redis_queue_namespace_prefix
        pipe = self.ctx.redis.pipeline(transaction=False)
        pipe.llen(prefix + self.own)
        pipe.llen(prefix + self.pool)
        return any(pipe.execute())

    # -- device row -----------------------------------------------------------------------
    def _set_device(self, **fields: Any) -> None:
        with self.ctx.db.session() as s:
            d = s.get(Device, self.device_id)
            if d is None:
                return
            changed = any(getattr(d, k) != v for k, v in fields.items())
            if fields.get("state") == DeviceState.ERROR and d.state != DeviceState.ERROR:
                from fabqueue.notify import publish_quietly

                # staff hear of it (site channels, those who chose it) with this very commit
                publish_quietly(s, "machine_error", site=self.site, params={
                    "device": d.name or d.id, "reason": fields.get("state_reason") or ""})
            # one conditional UPDATE: refused (LeaseLost) once another worker holds the lease
            self.lease.fence(s, seen_at=datetime.now(UTC), **fields)
            state = fields.get("state", d.state)
            job = fields.get("current_job_id", d.current_job_id)
        if changed and ("state" in fields or "current_job_id" in fields):
            events.publish(events.DEVICE_STATE, {"device": self.device_id, "site": self.site,
                                                 "state": state, "job": job,
                                                 "reason": fields.get("state_reason")})

    def _device(self) -> Device:
        with self.ctx.db.session() as s:
            d = s.get(Device, self.device_id)
            assert d is not None
            s.expunge(d)
            return d

    def drop_connection(self, reason: str) -> None:
        if self.driver is not None:
            try:
                self.driver.close()
            except Exception:  # closing a dead link may fail; it is gone either way
                log.debug("close failed", exc_info=True)
        self.driver = None
        self._offline_until = time.monotonic() + RETRY_OFFLINE_S
        self._set_device(state=DeviceState.OFFLINE.value, state_reason=reason)
