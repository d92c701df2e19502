"""One ``fabqueue serve`` per data folder, and no leftovers of an earlier one.

``serve`` holds an exclusive ``flock`` on ``DATA/serve.lock`` while it runs and writes the
PIDs of its process tree into it. The kernel drops the lock however ``serve`` dies, so a
lock we can take means the previous owner is gone: its recorded PIDs, and any process that
names this data folder in its command line or environment, are leftovers to end.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)


class AlreadyRunning(RuntimeError):
    pass


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _environ_data_dir(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    for item in raw.split(b"\0"):
        if item.startswith(b"FABQUEUE_DATA_DIR="):
            return item.split(b"=", 1)[1].decode(errors="replace")
    return None


def belongs_to(pid: int, data_dir: Path) -> bool:
    """Whether ``pid`` is part of a FabQueue instance on ``data_dir`` (never ourselves)."""
    if pid in (os.getpid(), 1):
        return False
    cmd = _cmdline(pid)
    if not cmd:
        return False
    folder = str(data_dir)
    env_dir = _environ_data_dir(pid)
    if env_dir is not None and Path(env_dir).expanduser().resolve() == data_dir:
        return True
    # serve names the folder with --data-dir; the embedded redis-server shows its socket
    from fabqueue.queue.embedded import socket_path_for

    sock = str(socket_path_for(data_dir))
    return any(arg == folder or arg.startswith(folder + os.sep) or sock in arg for arg in cmd)


def processes_of(data_dir: Path) -> list[int]:
    """Every live process on this machine that belongs to an instance on ``data_dir``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and belongs_to(int(entry.name), data_dir):
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return False
    return True


def end(pids: Iterable[int], grace_s: float = 3.0) -> list[int]:
    """SIGTERM, then SIGKILL what is left after ``grace_s``; returns the PIDs signalled."""
    pids = [p for p in set(pids) if _alive(p)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace_s
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not any(_alive(p) for p in pids):
            break
    return pids


class InstanceLock:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.path = self.data_dir / "serve.lock"
        self._fd: int | None = None

    def acquire(self) -> list[int]:
        """Take the lock and end an earlier instance's leftovers; returns the PIDs ended."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunning(f"another fabqueue serve runs on {self.data_dir} "
                                 f"(it holds {self.path})") from None
        self._fd = fd
        recorded = self._read()
        leftovers = [p for p in recorded if _alive(p) and belongs_to(p, self.data_dir)]
        leftovers += processes_of(self.data_dir)
        ended = end(leftovers)
        if ended:
            log.warning("ended %d leftover process(es) of an earlier serve on %s: %s",
                        len(ended), self.data_dir, sorted(ended))
        self.record([os.getpid()])
        return ended

    def _read(self) -> list[int]:
        try:
            data = json.loads(self.path.read_text() or "{}")
            return [int(p) for p in data.get("pids", [])]
        except (OSError, ValueError, TypeError, AttributeError):
            return []

    def record(self, pids: Iterable[int]) -> None:
        """Write the tree's PIDs (in place: the lock is on this very file)."""
        if self._fd is None:
            return
        body = json.dumps({"pids": sorted(set(pids))}).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, body, 0)

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.record([])
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
        self._fd = None


@contextlib.contextmanager
def held_quietly(data_dir: Path) -> Iterator[None]:
    """Hold the data folder's lock while replacing what is in it (``restore --force``):
    :class:`AlreadyRunning` while a ``serve`` holds it. Unlike :meth:`InstanceLock.acquire`
    this ends nothing, and creates no lock file in a folder that has none (an empty folder
    stays empty; a folder without the file has never had a ``serve``)."""
    path = data_dir.expanduser().resolve() / "serve.lock"
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AlreadyRunning(f"a fabqueue serve runs on {path.parent} (it holds {path}): "
                                 "stop it before restoring") from None
        yield
    finally:
        os.close(fd)  # closing drops the lock
