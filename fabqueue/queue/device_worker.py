"""The device worker: one process drives one machine.

It takes jobs from the machine's own queue first, then from its pool; starts a printer only
when staff have confirmed the bed is clear (and the site's heating limit allows) and a laser
only when an operator at it confirmed the checklist; watches the machine about once a
second; carries out staff commands; and records how each job ended. After a restart it finds
the job the machine is still running (by our name for it) and re-attaches instead of
starting it again. A machine that drops off makes its job ``interrupted``: never restarted
automatically, staff decide.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from sqlalchemy import select

from fabqueue.core.devices import DeviceState
from fabqueue.core.reasons import N_, reason, render
from fabqueue.drivers.base import Driver, DriverError, DriverOffline, MachineState, Outcome
from fabqueue.queue import control
from fabqueue.queue.claiming import Claiming
from fabqueue.queue.context import Context
from fabqueue.queue.device_base import RETRY_OFFLINE_S
from fabqueue.queue.idle import IdleLooks
from fabqueue.queue.interlocks import Interlocks
from fabqueue.queue.lease import LeaseLost
from fabqueue.queue.machines import build_driver, job_name
from fabqueue.queue.watching import Watching
from fabqueue.store.models import Device

__all__ = ["DeviceWorker", "build_driver", "job_name", "run_device_worker"]

log = logging.getLogger(__name__)

#: the notification kind for what connecting changed on a machine's controller
MACHINE_NOTE = "machine_note"


class DeviceWorker(IdleLooks, Interlocks, Claiming, Watching):
    """One machine's worker: the loop, the link and staff commands here; taking work in
    :mod:`~fabqueue.queue.claiming` (a file host sent its program meanwhile:
    :mod:`~fabqueue.queue.staging`), the interlocks before a start in
    :mod:`~fabqueue.queue.interlocks`, a running job in :mod:`~fabqueue.queue.watching`."""

    # -- connection -----------------------------------------------------------------------
    def ensure_connected(self) -> bool:
        if self.driver is not None:
            return True
        if not self.lease.held and not self.lease.acquire():
            return False  # another worker drives the machine: never connect beside it
        if time.monotonic() < self._offline_until:
            return False
        try:
            device = self._device()
            driver = build_driver(device)
            driver.connect()
            if self.kind == "laser":
                self._check_laser(driver, device)
        except DriverError as exc:
            self._offline_until = time.monotonic() + RETRY_OFFLINE_S
            state = DeviceState.OFFLINE if isinstance(exc, DriverOffline) or exc.code in (
                "offline", "no_api_key") else DeviceState.ERROR
            self._set_device(state=state.value, state_reason=exc.reason)
            return False
        self.driver = driver
        log.info("%s: connected", self.device_id)
        self._tell_connect_notes(driver)
        self.reattach()
        return True

    def _tell_connect_notes(self, driver: Driver) -> None:
        """What connecting changed on the controller (GRBL's ``$10`` on factory settings)
        goes to the site's staff and admins: a lab should know its machine was changed."""
        from fabqueue.store.staff_notices import tell_site_keepers

        notes = list(getattr(driver, "connect_notes", None) or ())
        if not notes:
            return
        with self.ctx.db.session() as s:
            for note in notes:
                log.warning("%s: %s", self.device_id, render(note))
                tell_site_keepers(s, self.site, MACHINE_NOTE,
                                  {"device": self.device_id, "reason": note})
            s.commit()
        driver.connect_notes.clear()  # type: ignore[attr-defined]

    @staticmethod
    def _check_laser(driver: Driver, device: Device) -> None:
        """GRBL must be in laser mode with the $30 the programs are scaled to."""
        from fabqueue.core.laser_settings import check_laser_settings
        from fabqueue.store.specs import laser_spec

        settings = getattr(driver, "settings", {}) or {}
        problems = check_laser_settings({f"${k}": v for k, v in settings.items()},
                                        laser_spec(device))
        if problems:
            driver.close()
            first = problems[0]
            raise DriverError(reason(first.code, first.text, **first.params)
                              if len(problems) == 1 else
                              reason("laser_settings", N_("{first} (and {more} more problems "
                                                          "with the laser's settings)"),
                                     first=reason(first.code, first.text, **first.params),
                                     more=len(problems) - 1), code="laser_settings")

    def link_gone(self) -> bool:
        """Idle laser whose serial port vanished (USB unplugged, power cut): let the driver
        go, so the next steps reconnect when the port returns. (Cheap for GRBL: its status
        is cached; printers' links are checked when they run a job.)"""
        if self.kind != "laser" or self.driver is None:
            return False
        st = self.driver.status()
        if st.state != MachineState.OFFLINE:
            return False
        self.drop_connection(st.message or reason("serial_link_lost", N_(
            "The laser's serial link was lost.")))
        return True

    # -- the loop -------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        redis_wait = 0.0
        self.lease.keep()
        while not stop.is_set():
            self.lease.alive()
            try:
                if not self.lease.held:
                    # another worker drives the machine: wait (touch nothing) and retry
                    if not self.lease.acquire():
                        stop.wait(self.lease.retry_s)
                        continue
                    control.beat(self.ctx.redis, self.device_id)
                    self._set_device(state=DeviceState.OFFLINE.value,
                                     state_reason=reason("starting", N_("starting")))
                self.lease.renew_if_due()
                self.step()
                redis_wait = 0.0
            except LeaseLost:
                self.stop_driving()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                # Redis is being restarted by serve: one line, then wait longer each time
                # (redis-py reconnects by itself on the next command).
                if not redis_wait:
                    log.warning("%s: Redis unreachable (%s); retrying", self.device_id, exc)
                redis_wait = min(5.0, max(0.25, redis_wait * 2))
                stop.wait(redis_wait)
            except Exception:
                log.exception("%s: step failed; carrying on", self.device_id)
                time.sleep(self.poll_s)
        if self.driver is not None:
            self.driver.close()
        self.lease.release()

    def stop_driving(self) -> None:
        """The lease went to another worker: let go of the machine without touching its job
        (no cancel: the new holder re-attaches to it) and write nothing more."""
        if self.driver is not None:
            try:
                self.driver.close()
            except Exception:  # the link may be half dead; it is released either way
                log.debug("close failed", exc_info=True)
        self.driver, self.job_id, self.stopped_by_operator = None, None, False
        self._offline_until = 0.0

    def wait_command(self) -> dict[str, Any] | None:
        # A laser running a job or a frame comes round fast (its stop, a held start); a
        # command wakes the wait at once anyway. Printers within a poll, and faster near the
        # end of a print so the next job isn't kept waiting for a poll (measured: ~18% of a
        # busy farm's time with short prints).
        timeout = self.poll_s
        if self.kind == "laser" and (self.job_id is not None or self.frames.running
                                     or self.frames.held_start is not None):
            timeout = 0.1
        elif self.job_id is not None and self.ending_soon:
            timeout = min(self.poll_s, 0.2)
        return control.take(self.ctx.redis, self.device_id, timeout_s=timeout)

    def step(self) -> None:
        self.beat()
        if not self.ensure_connected():
            cmd = control.take(self.ctx.redis, self.device_id, timeout_s=1.0)
            if cmd and cmd.get("command") == "test":
                self._offline_until = 0.0  # try the link again now, as asked
                ok = self.ensure_connected()
                d = self._device()
                control.reply(self.ctx.redis, self.device_id, cmd.get("nonce", ""), ok=ok,
                              state=d.state, message=d.state_reason)
            elif cmd:
                log.info("%s: offline, ignoring %s", self.device_id, cmd["command"])
            return
        cmd = self.wait_command()
        woken = cmd is not None
        while cmd:
            self.handle(cmd)
            cmd = control.take(self.ctx.redis, self.device_id)
        if self.driver is None:
            return
        if self.job_id is not None:
            every = 0.18 if self.ending_soon else self.poll_s * 0.9
            if time.monotonic() - self.last_progress_write >= every:
                self.watch()
        elif self.link_gone():
            return  # reconnects (ensure_connected) once the port is back
        elif not (self.kind == "laser" and self.frames.tick(self)) and self.look_due(woken):
            self.look_for_work()

    # -- commands -------------------------------------------------------------------------
    def handle(self, cmd: dict[str, Any]) -> None:
        name = cmd.get("command")
        driver = self.driver
        if driver is None:
            return
        try:
            if name == "stop":
                self.frames.cancel(self)
                if self.job_id is not None:
                    self.stopped_by_operator = True
                driver.cancel()
                if self.job_id is not None:
                    self.watch(force_outcome=Outcome.INTERRUPTED if self.kind == "laser"
                               else Outcome.CANCELLED,
                               reason=reason("stopped_by_staff", N_("stopped by staff")))
            elif name == "cancel" and self.job_id is not None:
                driver.cancel()
                self.watch(force_outcome=Outcome.CANCELLED,
                           reason=reason("cancelled", N_("cancelled")))
            elif name == "pause" and self.job_id is not None:
                driver.pause()
                self._set_device(state=DeviceState.PAUSED.value)
            elif name == "resume" and self.job_id is not None:
                driver.resume()
                self._set_device(state=DeviceState.BUSY.value)
            elif name == "reset":
                reset = getattr(driver, "reset", None)
                if reset is not None:
                    reset()
                if self.job_id is None:
                    self._set_device(state=DeviceState.IDLE.value, state_reason=None)
            elif name == "start" and self.kind == "laser":
                self.operator_start(int(cmd["job"]))
            elif name == "frame" and self.kind == "laser":
                self.frame(int(cmd["job"]))
            elif name == "test":
                st = driver.status()
                control.reply(self.ctx.redis, self.device_id, cmd.get("nonce", ""),
                              ok=st.state != MachineState.OFFLINE, state=st.state.value,
                              message=st.message)
        except DriverOffline as exc:
            self.lost(exc.reason)
        except DriverError as exc:
            log.warning("%s: %s failed: %s", self.device_id, name, exc.reason)
            self._set_device(state_reason=exc.reason)

def run_device_worker(ctx: Context, device_id: str) -> None:
    import signal

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    ctx.install_publisher()
    DeviceWorker(ctx, device_id).run(stop)


def enabled_device_ids(ctx: Context, site: str | None = None) -> list[str]:
    """The machines that should be driven (of ``site``, or all), in order."""
    q = select(Device.id).where(Device.enabled.is_(True)).order_by(Device.id)
    if site is not None:
        q = q.where(Device.site_id == site)
    with ctx.db.session() as s:
        return list(s.scalars(q))


def device_worker_children(sup: Any, ctx: Context) -> None:
    """One device-worker child per enabled machine (for ``fabqueue serve``), kept in step
    with the database: machines imported while serving get theirs within seconds."""
    for device_id in enabled_device_ids(ctx):
        sup.add_child(f"device-{device_id}", "device-worker", device_id)
    sup.device_ids = lambda: enabled_device_ids(ctx)


