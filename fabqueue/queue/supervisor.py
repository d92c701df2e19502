"""``fabqueue serve``'s process tree: embedded Redis, worker children, the reconciler.

Order matters. Start: Redis, then workers. Stop: workers (warm, then cold, then kill), then
Redis, so no worker keeps an orphaned Redis alive and no Redis outlives us.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fabqueue.config import Settings
from fabqueue.queue.context import Context
from fabqueue.queue.embedded import EmbeddedRedis

log = logging.getLogger(__name__)


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None


@dataclass
class Supervisor:
    settings: Settings
    redis_owner: EmbeddedRedis | None = None
    children: list[Child] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: returns the ids of machines that should have a device worker (None: don't track)
    device_ids: Callable[[], list[str]] | None = None

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

    def start_redis(self) -> None:
        if self.settings.embedded_redis:
            self.redis_owner = EmbeddedRedis(self.settings.data_path).start()

    def add_child(self, name: str, *args: str, module: str = "fabqueue") -> Child:
        child = Child(name, [sys.executable, "-m", module, *args])
        self.children.append(child)
        return child

    def start_children(self) -> None:
        env = self.child_env()
        for child in self.children:
            child.proc = subprocess.Popen(child.argv, env=env)
            log.info("started %s (pid %s)", child.name, child.proc.pid)
        t = threading.Thread(target=self._watch_children, name="child-watch", daemon=True)
        t.start()
        self._threads.append(t)

    def _watch_children(self) -> None:
        """Restart a child that died (a killed worker comes back by itself)."""
        env = self.child_env()
        ticks = 0
        while not self._stop.wait(2.0):
            ticks += 1
            with self._lock:
                if self._stop.is_set():
                    return
                self._restart_dead(env)
                if self.device_ids is not None and ticks % 3 == 0:
                    self._sync_devices(env)

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
            child = self.add_child(f"device-{device_id}", "device-worker", device_id)
            child.proc = subprocess.Popen(child.argv, env=env)
            log.info("started %s (pid %s)", child.name, child.proc.pid)
        for device_id in running.keys() - wanted:
            child = running[device_id]
            self.children.remove(child)
            if child.proc is not None and child.proc.poll() is None:
                child.proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.proc.wait(timeout=10)
            log.info("stopped %s: the machine was removed or disabled", child.name)

    def _restart_dead(self, env: dict[str, str]) -> None:
        for child in self.children:
            if child.proc is not None and child.proc.poll() is not None:
                log.warning("%s exited with %s; restarting", child.name, child.proc.returncode)
                child.proc = subprocess.Popen(child.argv, env=env)

    def start_reconciler(self, ctx: Context) -> None:
        from fabqueue.queue.reconcile import reconcile_once

        def loop() -> None:
            while True:
                try:
                    result = reconcile_once(ctx)
                    log.debug("reconciled: %s", result)
                except Exception:
                    log.exception("reconciliation failed; will retry")
                if self._stop.wait(self.settings.reconcile_interval_s):
                    return

        t = threading.Thread(target=loop, name="reconciler", daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        with self._lock:  # the watcher must not restart what we are stopping
            self._stop.set()
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
        sock = Path(self.redis_owner.socket) if self.redis_owner else None
        if sock is not None:
            with contextlib.suppress(FileNotFoundError):
                sock.unlink()
