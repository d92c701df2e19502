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

import json
import logging
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from rq import Queue
from sqlalchemy import func, select

from fabqueue import events
from fabqueue.core.devices import DeviceState
from fabqueue.core.jobs import JobStatus
from fabqueue.core.scheduling import Candidate, MachineCaps, may_start_heating, pick
from fabqueue.drivers.base import Driver, DriverError, DriverOffline, MachineState, Outcome
from fabqueue.queue import control, names
from fabqueue.queue.context import Context
from fabqueue.queue.pipeline import dispatch_entry_id
from fabqueue.store.jobs import change_status, lock_job, queue_event, record
from fabqueue.store.models import Device, Job

log = logging.getLogger(__name__)

OUTCOME_STATUS = {
    Outcome.DONE: JobStatus.DONE,
    Outcome.FAILED: JobStatus.FAILED,
    Outcome.CANCELLED: JobStatus.CANCELLED,
    Outcome.INTERRUPTED: JobStatus.INTERRUPTED,
}
RETRY_OFFLINE_S = 5.0
FAIR_SHARE_WINDOW = timedelta(hours=24)


def job_name(job_id: int) -> str:
    """Our name for a job on a machine: how a restarted worker recognises it."""
    from fabqueue.drivers.octoprint import file_name_for

    return file_name_for(job_id)


def build_driver(device: Device) -> Driver:
    """A driver from the device's settings; secrets come from the environment."""
    conn = device.connection or {}
    settings = device.settings or {}
    if device.driver == "simulated":
        from fabqueue.drivers.simulated import SimulatedPrinterDriver

        speed = float(settings.get("simulated_speed") or 20.0)
        return SimulatedPrinterDriver(device.id, speed=speed)
    if device.driver == "octoprint":
        from fabqueue.drivers.octoprint import OctoPrintDriver

        env_name = conn.get("api_key_env")
        key = os.environ.get(env_name or "", "")
        if not key:
            raise DriverError(f"the API key variable {env_name or '(none named)'} is not set "
                              "in the environment", code="no_api_key")
        return OctoPrintDriver(conn["url"], key)
    if device.driver == "grbl":
        from fabqueue.drivers.grbl import GrblDriver

        return GrblDriver(conn["port"], int(conn.get("baud") or 115200),
                          homing=bool(settings.get("homing")))
    raise DriverError(f"unknown driver {device.driver}", code="bad_driver")


class DeviceWorker:
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
        with ctx.db.session() as s:
            d = s.get(Device, device_id)
            if d is None:
                raise SystemExit(f"no device {device_id}")
            self.kind = d.kind
            self.site = d.site_id
            self.pool = names.pool_queue(d.site_id, d.printer_class or d.kind)
            self.own = names.device_queue(d.id)

    # -- device row -----------------------------------------------------------------------
    def _set_device(self, **fields: Any) -> None:
        with self.ctx.db.session() as s:
            d = s.get(Device, self.device_id)
            if d is None:
                return
            changed = any(getattr(d, k) != v for k, v in fields.items())
            for k, v in fields.items():
                setattr(d, k, v)
            d.seen_at = datetime.now(UTC)
            state, job = d.state, d.current_job_id
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

    # -- connection -----------------------------------------------------------------------
    def ensure_connected(self) -> bool:
        if self.driver is not None:
            return True
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
        self.reattach()
        return True

    @staticmethod
    def _check_laser(driver: Driver, device: Device) -> None:
        """GRBL must be in laser mode with the $30 the programs are scaled to."""
        from fabqueue.laser.gcode import check_laser_settings
        from fabqueue.store.specs import laser_spec

        settings = getattr(driver, "settings", {}) or {}
        problems = check_laser_settings({f"${k}": v for k, v in settings.items()},
                                        laser_spec(device))
        if problems:
            driver.close()
            raise DriverError("; ".join(p.render() for p in problems), code="laser_settings")

    def drop_connection(self, reason: str) -> None:
        if self.driver is not None:
            try:
                self.driver.close()
            except Exception:  # closing a dead link may fail; it is gone either way
                log.debug("close failed", exc_info=True)
        self.driver = None
        self._offline_until = time.monotonic() + RETRY_OFFLINE_S
        self._set_device(state=DeviceState.OFFLINE.value, state_reason=reason)

    def reattach(self) -> None:
        """After a (re)start: find the job the database says this machine runs."""
        with self.ctx.db.session() as s:
            job_id = s.scalar(select(Job.id).where(Job.device_id == self.device_id,
                                                   Job.status == JobStatus.RUNNING))
        d = self._device()
        if job_id is None:
            if d.state in (DeviceState.OFFLINE, DeviceState.ERROR, DeviceState.BUSY,
                           DeviceState.HEATING, DeviceState.PAUSED):
                # a printer whose last state we don't know: its bed may hold a print
                after = (DeviceState.NEEDS_BED_CLEAR if self.kind == "printer"
                         and d.current_job_id else DeviceState.IDLE)
                self._set_device(state=after.value, state_reason=None)
            return
        assert self.driver is not None
        st = self.driver.find(job_name(job_id))
        if st is None:
            self.finish(job_id, Outcome.INTERRUPTED,
                        "the machine does not know this job any more (it was restarted?)")
            return
        log.info("%s: re-attached to job %s", self.device_id, job_id)
        self.job_id = job_id
        with self.ctx.db.session() as s:
            job = s.get(Job, job_id)
            if job is not None:
                record(s, job, "reattached", data={"device": self.device_id})
        self._set_device(state=DeviceState.BUSY.value, current_job_id=job_id, state_reason=None)

    # -- the loop -------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        control.beat(self.ctx.redis, self.device_id)
        self._set_device(state=DeviceState.OFFLINE.value, state_reason="starting")
        while not stop.is_set():
            try:
                self.step()
            except Exception:
                log.exception("%s: step failed; carrying on", self.device_id)
                time.sleep(self.poll_s)
        if self.driver is not None:
            self.driver.close()

    def wait_command(self) -> dict[str, Any] | None:
        # Lasers wake fast for the stop button; printers within a poll, and faster near the
        # end of a print so the next job isn't kept waiting for a poll (measured: ~18% of a
        # busy farm's time with short prints).
        timeout = self.poll_s
        if self.kind == "laser":
            timeout = 0.1
        elif self.job_id is not None and self.ending_soon:
            timeout = min(self.poll_s, 0.2)
        return control.take(self.ctx.redis, self.device_id, timeout_s=timeout)

    def step(self) -> None:
        control.beat(self.ctx.redis, self.device_id)
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
        while cmd:
            self.handle(cmd)
            cmd = control.take(self.ctx.redis, self.device_id)
        if self.driver is None:
            return
        if self.job_id is not None:
            every = 0.18 if self.ending_soon else self.poll_s * 0.9
            if time.monotonic() - self.last_progress_write >= every:
                self.watch()
        else:
            self.look_for_work()

    # -- commands -------------------------------------------------------------------------
    def handle(self, cmd: dict[str, Any]) -> None:
        name = cmd.get("command")
        driver = self.driver
        if driver is None:
            return
        try:
            if name == "stop":
                if self.job_id is not None:
                    self.stopped_by_operator = True
                driver.cancel()
                if self.job_id is not None:
                    self.watch(force_outcome=Outcome.INTERRUPTED if self.kind == "laser"
                               else Outcome.CANCELLED, reason="stopped by staff")
            elif name == "cancel" and self.job_id is not None:
                driver.cancel()
                self.watch(force_outcome=Outcome.CANCELLED, reason="cancelled")
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

    # -- watching a running job -------------------------------------------------------------
    def watch(self, force_outcome: Outcome | None = None, reason: str | None = None) -> None:
        assert self.driver is not None and self.job_id is not None
        st = self.driver.status()
        self.last_progress_write = time.monotonic()
        self.ending_soon = (st.progress or 0) >= 95 or (
            st.time_left_s is not None and st.time_left_s <= 2 * self.poll_s)
        if st.state == MachineState.OFFLINE and force_outcome is None:
            self.lost(st.message or "the machine stopped answering")
            return
        outcome = force_outcome or st.outcome
        if outcome is None and st.state == MachineState.ERROR:
            outcome = Outcome.FAILED
        if outcome is not None:
            self.finish(self.job_id, outcome, st.message or reason)
            return
        heating = _is_heating(st.temperatures, st.extra)
        state = (DeviceState.PAUSED if st.state == MachineState.PAUSED
                 else DeviceState.HEATING if heating else DeviceState.BUSY)
        self._set_device(state=state.value, progress=st.progress, time_left_s=st.time_left_s,
                         temperatures=st.temperatures or {}, state_reason=None)
        events.publish(events.DEVICE_PROGRESS, {
            "device": self.device_id, "site": self.site, "job": self.job_id,
            "progress": st.progress, "time_left_s": st.time_left_s, "elapsed_s": st.elapsed_s,
            "lines_acked": st.extra.get("lines_acked"), "lines_total": st.extra.get("lines_total"),
            "temperatures": st.temperatures, "state": state.value})

    def lost(self, reason: str) -> None:
        """The link dropped: the job is interrupted (never restarted by itself)."""
        if self.job_id is not None:
            self.finish(self.job_id, Outcome.INTERRUPTED, reason, device_state=None)
        self.drop_connection(reason)

    def finish(self, job_id: int, outcome: Outcome, reason: str | None,
               device_state: DeviceState | bool | None = True) -> None:
        target = OUTCOME_STATUS[outcome]
        with self.ctx.db.session() as s:
            job = lock_job(s, job_id)
            if job is not None and job.status == JobStatus.RUNNING:
                now = datetime.now(UTC)
                started = job.started_at.replace(tzinfo=UTC) if job.started_at else now
                job.actual_seconds = (now - started).total_seconds()
                change_status(s, job, target, reason=reason, action=f"ended_{outcome.value}",
                              data={"device": self.device_id,
                                    "seconds": round(job.actual_seconds, 1)})
        self.job_id = None
        self.stopped_by_operator = False
        if device_state is None:
            return
        after = DeviceState.NEEDS_BED_CLEAR if self.kind == "printer" else DeviceState.IDLE
        self._set_device(state=after.value, progress=None, time_left_s=None,
                         current_job_id=job_id if self.kind == "printer" else None,
                         state_reason=reason if outcome != Outcome.DONE else None)
        log.info("%s: job %s ended %s", self.device_id, job_id, outcome.value)

    # -- taking work ----------------------------------------------------------------------
    def candidates(self, queue_name: str) -> list[Candidate]:
        q = Queue(queue_name, connection=self.ctx.redis)
        ids = [int(e.split("-", 1)[1]) for e in q.get_job_ids() if e.startswith("run-")]
        if not ids:
            return []
        with self.ctx.db.session() as s:
            jobs = list(s.scalars(select(Job).where(Job.id.in_(ids))))
        out = []
        for j in jobs:
            if j.status != JobStatus.READY:
                self.ctx.redis.lrem(q.key, 0, dispatch_entry_id(j.id))  # stale entry
                continue
            out.append(Candidate(j.id, j.owner_id, j.batch_id, j.material_id, j.priority,
                                 tuple((j.analysis or {}).get("fits") or ()),
                                 j.pinned_device_id,
                                 (j.slice_result or {}).get("estimated_seconds")))
        return out

    def recent_starts(self) -> dict[str, int]:
        since = datetime.now(UTC) - FAIR_SHARE_WINDOW
        with self.ctx.db.session() as s:
            rows = s.execute(select(Job.owner_id, Job.batch_id, func.count()).where(
                Job.site_id == self.site, Job.started_at >= since).group_by(
                Job.owner_id, Job.batch_id)).all()
        out: dict[str, int] = {}
        for owner, batch, n in rows:
            key = f"batch:{batch}" if batch else f"owner:{owner}"
            out[key] = out.get(key, 0) + int(n)
        return out

    def next_job(self) -> Candidate | None:
        d = self._device()
        caps = MachineCaps(d.id, tuple(d.materials or ()), d.loaded_material)
        return pick(self.candidates(self.own), self.candidates(self.pool), caps,
                    self.recent_starts())

    def claim(self, job_id: int) -> bool:
        """Take the job's entry off whichever queue holds it; only one machine wins."""
        entry = dispatch_entry_id(job_id)
        for name in (self.own, self.pool):
            if self.ctx.redis.lrem(Queue(name, connection=self.ctx.redis).key, 1, entry):
                self.ctx.redis.delete(f"rq:job:{entry}")
                return True
        return False

    def look_for_work(self) -> None:
        d = self._device()
        if not d.enabled:
            return
        if d.state == DeviceState.NEEDS_BED_CLEAR:
            return  # the interlock: staff must confirm the bed is clear
        if d.state in (DeviceState.OFFLINE, DeviceState.ERROR) and self.driver is not None:
            st = self.driver.status()
            if st.state == MachineState.IDLE:
                self._set_device(state=DeviceState.IDLE.value, state_reason=None)
            return
        if self.kind == "laser":
            self.offer_to_operator(d)
            return
        if d.state != DeviceState.IDLE:
            return
        with self.ctx.db.session() as s:
            heating = s.scalar(select(func.count()).select_from(Device).where(
                Device.site_id == self.site, Device.state == DeviceState.HEATING,
                Device.id != self.device_id))
        if not may_start_heating(int(heating or 0), self.ctx.settings.max_heating_per_site):
            return
        cand = self.next_job()
        if cand is None or not self.claim(cand.job_id):
            return
        self.start_job(cand.job_id)

    def start_job(self, job_id: int) -> None:
        assert self.driver is not None
        with self.ctx.db.session() as s:
            job = lock_job(s, job_id)
            if job is None or job.status != JobStatus.READY or not job.program_sha256:
                return
            change_status(s, job, JobStatus.RUNNING, data={"device": self.device_id})
            job.device_id = self.device_id
            program = self.ctx.files.path(job.program_sha256)
            timing = (job.slice_result or {}).get("line_seconds_sha256")
            # the machine's row changes in the same transaction: one commit before the upload
            d = s.get(Device, self.device_id)
            if d is not None:
                d.state = (DeviceState.HEATING if self.kind == "printer"
                           else DeviceState.BUSY).value
                d.current_job_id, d.progress, d.state_reason = job_id, 0.0, None
                d.confirmation, d.seen_at = None, datetime.now(UTC)
                queue_event(s, events.DEVICE_STATE, {"device": self.device_id,
                                                     "site": self.site, "state": d.state,
                                                     "job": job_id})
        self.job_id = job_id
        try:
            if timing and self.kind == "laser":
                seconds = json.loads(self.ctx.files.path(timing).read_text())
                self.driver.start(job_name(job_id), program,  # type: ignore[call-arg]
                                  line_seconds=seconds)
            else:
                self.driver.start(job_name(job_id), program)
        except DriverOffline as exc:
            self.lost(exc.reason)
        except DriverError as exc:
            self.refused_start(job_id, exc)

    def refused_start(self, job_id: int, exc: DriverError) -> None:
        """The machine refused to start (busy, not in laser mode …): the job waits again."""
        with self.ctx.db.session() as s:
            job = lock_job(s, job_id)
            if job is not None and job.status == JobStatus.RUNNING:
                change_status(s, job, JobStatus.INTERRUPTED, reason=exc.reason,
                              action="start_refused")
                change_status(s, job, JobStatus.READY, action="requeued",
                              reason="waiting again after the machine refused to start")
                job.device_id = None
                queue = self.own if job.pinned_device_id else self.pool
        from fabqueue.queue.pipeline import push_ready

        push_ready(self.ctx, job_id, queue, at_front=True)
        self.job_id = None
        state = DeviceState.ERROR if exc.code in ("not_laser_mode", "alarm") else \
            DeviceState.IDLE
        self._set_device(state=state.value, state_reason=exc.reason, current_job_id=None,
                         progress=None)

    # -- lasers: the operator starts -------------------------------------------------------
    def offer_to_operator(self, d: Device) -> None:
        """Show the next ready job as waiting for the operator; never start it alone."""
        if d.state not in (DeviceState.IDLE, DeviceState.AWAITING_OPERATOR):
            return
        cand = self.next_job()
        if cand is None:
            if d.state == DeviceState.AWAITING_OPERATOR or d.current_job_id:
                self._set_device(state=DeviceState.IDLE.value, current_job_id=None)
            return
        if d.state != DeviceState.AWAITING_OPERATOR or d.current_job_id != cand.job_id:
            self._set_device(state=DeviceState.AWAITING_OPERATOR.value,
                             current_job_id=cand.job_id)
        conf = d.confirmation or {}
        if conf and conf.get("expires", 0) < time.time():
            self._set_device(confirmation=None, state_reason="the operator's confirmation "
                             "expired; confirm the checklist again at the laser")

    def operator_start(self, job_id: int) -> None:
        d = self._device()
        conf = d.confirmation or {}
        if conf.get("job") != job_id or conf.get("expires", 0) < time.time():
            self._set_device(confirmation=None, state_reason="the operator's confirmation "
                             "expired; confirm the checklist again at the laser")
            return
        if self.job_id is not None:
            return
        with self.ctx.db.session() as s:
            job = s.get(Job, job_id)
            ok = job is not None and job.status == JobStatus.READY
        if not ok or not self.claim(job_id):
            self._set_device(confirmation=None,
                             state_reason=f"job {job_id} is not waiting at this laser")
            return
        self.start_job(job_id)

    def frame(self, job_id: int) -> None:
        from fabqueue.laser.gcode import frame_program
        from fabqueue.store.specs import laser_spec

        with self.ctx.db.session() as s:
            job = s.get(Job, job_id)
            bbox = (job.slice_result or {}).get("bbox") if job else None
            laser = laser_spec(s.get(Device, self.device_id))  # type: ignore[arg-type]
        if not bbox or self.job_id is not None:
            return
        program = frame_program(tuple(bbox), min(3000.0, laser.max_speed_mm_min), laser=laser)
        self.driver.run_frame(program.lines)  # type: ignore[union-attr]


def _is_heating(temps: dict[str, dict[str, float | None]], extra: dict[str, object]) -> bool:
    if "sim_state" in extra:
        return extra["sim_state"] == "heating"
    for t in (temps or {}).values():
        target, actual = t.get("target"), t.get("actual")
        if target and actual is not None and target > 0 and actual < target - 3:
            return True
    return False


def run_device_worker(ctx: Context, device_id: str) -> None:
    import signal

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    ctx.install_publisher()
    DeviceWorker(ctx, device_id).run(stop)


def enabled_device_ids(ctx: Context) -> list[str]:
    with ctx.db.session() as s:
        return list(s.scalars(select(Device.id).where(Device.enabled.is_(True))
                              .order_by(Device.id)))


def device_worker_children(sup: Any, ctx: Context) -> None:
    """One device-worker child per enabled machine (for ``fabqueue serve``), kept in step
    with the database: machines imported while serving get theirs within seconds."""
    for device_id in enabled_device_ids(ctx):
        sup.add_child(f"device-{device_id}", "device-worker", device_id)
    sup.device_ids = lambda: enabled_device_ids(ctx)


