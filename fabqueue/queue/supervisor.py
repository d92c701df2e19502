"""``fabqueue serve``'s process tree: embedded Redis, worker children, the reconciler.

Order matters. Start: Redis, then workers. Stop: workers (warm, then cold, then kill), then
Redis. Every child is tied to ``serve`` (:mod:`fabqueue.queue.lifeline`), so a killed
``serve`` takes its tree with it; the data folder's lock (:mod:`fabqueue.queue.instance`)
ends whatever survived before the next ``serve`` starts. A child or the embedded Redis that
dies is started again (with back-off, so a child that can't start doesn't spin), and after a
Redis restart the reconciler rebuilds the queues from the database at once. Beyond the warm
workers, helper workers are started while jobs wait and leave when the queues are empty
(:mod:`fabqueue.core.worker_scale`); they are not restarted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fabqueue.config import Settings
from fabqueue.core.restarts import after_death
from fabqueue.core.worker_scale import start_helper, warm_count
from fabqueue.queue.context import Context
from fabqueue.queue.embedded import EmbeddedRedis
from fabqueue.queue.instance import InstanceLock
from fabqueue.queue.lifeline import become_subreaper, end_strays, preexec

log = logging.getLogger(__name__)


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    failures: int = 0
    started_at: float = 0.0
    retry_at: float = 0.0
    helper: bool = False  # started while jobs waited; leaves when the queues are empty


@dataclass
class Supervisor:
    settings: Settings
    redis_owner: EmbeddedRedis | None = None
    children: list[Child] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _reconcile_now: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    instance: InstanceLock | None = None
    #: returns the ids of machines that should have a device worker (None: don't track)
    device_ids: Callable[[], list[str]] | None = None
    redis_restarts: int = 0
    _waiting_since: float | None = None
    _last_helper_at: float | None = None
    _helpers_started: int = 0
    _queue_redis: object | None = None

    @property
    def redis_url(self) -> str:
        if self.settings.redis_url:
            return self.settings.redis_url
        assert self.redis_owner is not None
        return self.redis_owner.url

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["FABQUEUE_DATA_DIR"] = str(self.settings.data_path)
        env["REDIS_URL"] = self.redis_url
        if self.settings.database_url:
            env["DATABASE_URL"] = self.settings.database_url
        return env

    def claim_data_dir(self) -> list[int]:
        """Take the data folder's lock, ending an earlier instance's leftovers."""
        self.instance = InstanceLock(self.settings.data_path)
        return self.instance.acquire()

    def _record_pids(self) -> None:
        if self.instance is None:
            return
        pids = [os.getpid(), *(c.proc.pid for c in self.children if c.proc)]
        if self.redis_owner is not None and self.redis_owner.pid:
            pids.append(self.redis_owner.pid)
        self.instance.record(pids)

    def start_redis(self) -> None:
        if self.settings.embedded_redis:
            self.redis_owner = EmbeddedRedis(self.settings.data_path).start()
            self._record_pids()

    def add_child(self, name: str, *args: str, module: str = "fabqueue") -> Child:
        child = Child(name, [sys.executable, "-m", module, *args])
        self.children.append(child)
        return child

    def _spawn(self, child: Child, env: dict[str, str]) -> None:
        child.proc = subprocess.Popen(child.argv, env=env, preexec_fn=preexec())
        child.started_at = time.monotonic()
        log.info("started %s (pid %s)", child.name, child.proc.pid)
        self._record_pids()

    def start_children(self) -> None:
        become_subreaper()
        env = self.child_env()
        for child in self.children:
            self._spawn(child, env)
        # Children are tied to the thread that started them: the watcher lives as long as
        # serve, and so does the main thread.
        t = threading.Thread(target=self._watch, name="child-watch", daemon=True)
        t.start()
        self._threads.append(t)

    def _watch(self) -> None:
        env = self.child_env()
        last_children = last_devices = time.monotonic()
        while not self._stop.wait(0.5):
            with self._lock:
                if self._stop.is_set():
                    return
                self._check_redis()
                now = time.monotonic()
                self._scale_workers(env, now)
                if now - last_children >= 2.0:
                    last_children = now
                    self._restart_dead(env)
                    self._end_strays()
                if self.device_ids is not None and now - last_devices >= 6.0:
                    last_devices = now
                    self._sync_devices(env)

    def _scale_workers(self, env: dict[str, str], now: float) -> None:
        """Start a helper worker when jobs have waited for every running worker."""
        most = max(1, self.settings.workers)
        if most <= warm_count(self.settings.warm_workers, most):
            return
        waiting = self._jobs_waiting()
        if waiting is None:  # Redis unreachable: the workers wait for it too
            return
        if not waiting:
            self._waiting_since = None
            return
        if self._waiting_since is None:
            self._waiting_since = now
        running = sum(1 for c in self.children if c.name.startswith("worker-")
                      and c.proc is not None and c.proc.poll() is None)
        if not start_helper(waiting_since=self._waiting_since, now=now, running=running,
                            most=most, last_helper_at=self._last_helper_at):
            return
        self._helpers_started += 1
        name = f"worker-h{self._helpers_started}"
        child = self.add_child(name, "worker", "--burst", "--name-suffix",
                               f"h{self._helpers_started}")
        child.helper = True
        self._last_helper_at = now
        self._spawn(child, env)
        log.info("%s started: jobs waited %.1f s for a worker", name, now - self._waiting_since)

    def _jobs_waiting(self) -> int | None:
        import redis
        from rq import Queue

        from fabqueue.queue import names

        try:
            if self._queue_redis is None:
                self._queue_redis = redis.Redis.from_url(self.redis_url, socket_timeout=2)
            pipe = self._queue_redis.pipeline(transaction=False)  # one round trip a tick
            for q in (names.ANALYSIS, names.SLICING):
                pipe.llen(Queue.redis_queue_namespace_prefix + q)
            return sum(pipe.execute())
        except (redis.RedisError, OSError):
            return None

    def _end_strays(self) -> None:
        """A killed worker's work-horse dies with it, but what the horse ran (PrusaSlicer)
        is re-parented to us: end it rather than let it finish work nobody waits for."""
        known = {c.proc.pid for c in self.children if c.proc is not None}
        if self.redis_owner is not None and self.redis_owner.pid:
            known.add(self.redis_owner.pid)
        for pid in end_strays(known):
            log.warning("ended %s, left behind by a worker that died", pid)

    def _check_redis(self) -> None:
        """The embedded Redis died (killed, crashed): the same socket again, within seconds."""
        owner = self.redis_owner
        if owner is None or owner.alive():
            return
        code = owner.proc.returncode if owner.proc else None
        log.error("embedded Redis exited with %s; starting it again on %s", code, owner.socket)
        try:
            owner.start()
        except (RuntimeError, OSError):
            log.exception("embedded Redis did not start; trying again")
            return
        self.redis_restarts += 1
        self._record_pids()
        self._reconcile_now.set()  # its queues are empty: rebuild them from the database

    def _sync_devices(self, env: dict[str, str]) -> None:
        """Machines imported or removed while serving get or lose their worker."""
        try:
            wanted = set(self.device_ids())  # type: ignore[misc]
        except Exception:  # the database may be busy; try again next tick
            log.debug("device list unavailable", exc_info=True)
            return
        running = {c.name.removeprefix("device-"): c for c in self.children
                   if c.name.startswith("device-")}
        for device_id in sorted(wanted - running.keys()):
            self._spawn(self.add_child(f"device-{device_id}", "device-worker", device_id), env)
        for device_id in running.keys() - wanted:
            child = running[device_id]
            self.children.remove(child)
            if child.proc is not None and child.proc.poll() is None:
                child.proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.proc.wait(timeout=10)
            log.info("stopped %s: the machine was removed or disabled", child.name)

    def _restart_dead(self, env: dict[str, str]) -> None:
        """A killed worker comes back by itself; one that keeps dying, less and less often."""
        now = time.monotonic()
        for child in list(self.children):
            if child.proc is None or child.proc.poll() is None:
                continue
            if child.helper:  # its queues were empty (or it was killed: the reconciler
                self.children.remove(child)  # queues its job again for the warm ones)
                log.info("%s left (exit %s)", child.name, child.proc.returncode)
                self._record_pids()
                continue
            if child.retry_at == 0.0:
                child.failures, delay = after_death(now - child.started_at, child.failures)
                child.retry_at = now + delay
                log.warning("%s exited with %s; restarting in %.0f s", child.name,
                            child.proc.returncode, delay)
            if now >= child.retry_at:
                child.retry_at = 0.0
                self._spawn(child, env)

    def start_reconciler(self, ctx: Context) -> None:
        from fabqueue.queue.reconcile import reconcile_once

        def loop() -> None:
            settle: float | None = None
            while True:
                try:
                    result = reconcile_once(ctx, settle_s=settle)
                    log.debug("reconciled: %s", result)
                except Exception:
                    log.exception("reconciliation failed; will retry")
                self._reconcile_now.wait(self.settings.reconcile_interval_s)
                if self._stop.is_set():
                    return
                # After a Redis restart nothing is queued any more: don't wait for entries
                # to look stale, every job the database says is in flight is queued again.
                settle = 0.0 if self._reconcile_now.is_set() else None
                self._reconcile_now.clear()

        t = threading.Thread(target=loop, name="reconciler", daemon=True)
        t.start()
        self._threads.append(t)

    def start_periodic(self, ctx: Context) -> None:
        """Reminders, expiring trainings, the purge: ``fabqueue.queue.periodic``."""
        from fabqueue.queue import periodic

        self._threads.append(periodic.start(ctx, self._stop))

    def stop(self) -> None:
        with self._lock:  # the watcher must not restart what we are stopping
            self._stop.set()
        self._reconcile_now.set()
        procs = [c.proc for c in self.children if c.proc and c.proc.poll() is None]
        for sig, wait_s in ((signal.SIGTERM, 8.0), (signal.SIGTERM, 4.0), (signal.SIGKILL, 4.0)):
            for p in procs:
                if p.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        p.send_signal(sig)
            for p in procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=wait_s)
            procs = [p for p in procs if p.poll() is None]
            if not procs:
                break
        if self.redis_owner is not None:
            self.redis_owner.stop()
        if self.instance is not None:
            self.instance.release()
