"""Pytest fixtures that run the real PrusaLink 0.8.1 in front of our Prusa-firmware responder.

Use from a test module (``prusalink_peer`` is registered once in tests/conftest.py: a session
fixture imported into several test modules is a fixture of each, a peer started once per
module)::

    from tests.prusalink_fixtures import prusalink  # noqa: F401

``prusalink_peer`` (session-scoped) starts, ONCE per session, the responder
(tests/peers/prusa_firmware.py, on a pseudo-terminal) and PrusaLink
(``scripts/install_prusalink_peer.sh`` installs it under ``<repo>/.peers/prusalink``;
started through tests/peers/prusalink_launch.py: no mDNS, no 8 s boot wait) on a free
loopback port. ``prusalink`` is the same peer, reset for the test: running, idle, no files.
PrusaLink refuses storage under /dev, /sys, /proc and /tmp (every upload then answers 500),
so its folder goes where it accepts one wherever the checkout lives (:func:`runs_root`:
``$FABQUEUE_PRUSALINK_RUNS``, ``<repo>/.peers/prusalink/runs``, ``~/.cache``, ``/var/tmp``), one
per session. A peer that cannot start, or starts without its storage, fails the first test
with its log's tail, and every later one at once with the same reason.
Without the installed peer the tests skip, except under CI (``CI=true``): there it fails.

Our responder answers every move at once: PrusaLink's own line-by-line streaming (N…*chk,
``ok``) sets the pace, a few hundred lines a second on this machine.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port, stop_process

REPO = Path(__file__).resolve().parents[1]
PEER = Path(os.environ.get("FABQUEUE_PRUSALINK_PEER", REPO / ".peers" / "prusalink"))
PYTHON = PEER / "venv" / "bin" / "python"
HERE = Path(__file__).resolve().parent / "peers"
READY_TIMEOUT_S = 60.0
STORAGE_GRACE_S = 15.0  # from its first answer to its storage attached
REALM = "Administrator"  # prusa/link/web/lib/auth.py
PASSWORD = "fabqueue-test-pass"


# prusa/link/const.py BLACKLISTED_PATHS: PrusaLink attaches no storage under these (its status
# then shows a storage without a name, and every PUT answers 500)
REFUSED_ROOTS = (Path("/dev"), Path("/sys"), Path("/proc"), Path("/tmp"))


def refused(path: Path) -> bool:
    return any(path == root or root in path.parents for root in REFUSED_ROOTS)


def runs_root() -> Path:
    """A writable folder for the peer's runs that PrusaLink accepts as storage, wherever the
    checkout lives (a clone under /tmp too). Paths are resolved: PrusaLink is given real ones."""
    explicit = os.environ.get("FABQUEUE_PRUSALINK_RUNS")
    if explicit:
        path = Path(explicit).resolve()
        if refused(path):
            raise RuntimeError(f"FABQUEUE_PRUSALINK_RUNS={explicit} is under a folder PrusaLink "
                               f"refuses as storage ({', '.join(map(str, REFUSED_ROOTS))})")
        candidates = [path]
    else:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        candidates = [PEER / "runs", cache / "fabqueue-tests" / "prusalink",
                      Path("/var/tmp") / f"fabqueue-tests-{os.getuid()}" / "prusalink"]
    for candidate in candidates:
        path = candidate.resolve()
        if refused(path):
            continue
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(path, os.W_OK):
            return path
    raise RuntimeError("no folder for the PrusaLink peer outside "
                       f"{', '.join(map(str, REFUSED_ROOTS))}: tried "
                       f"{', '.join(map(str, candidates))}; set FABQUEUE_PRUSALINK_RUNS")


def prune_runs(root: Path) -> None:
    """Folders of earlier sessions that were killed before their teardown (run-<pid>-…)."""
    for old in root.glob("run-*-*"):
        try:
            os.kill(int(old.name.split("-")[1]), 0)
        except ProcessLookupError:
            shutil.rmtree(old, ignore_errors=True)
        except (ValueError, PermissionError):
            continue


def require_prusalink() -> None:
    if PYTHON.exists() and subprocess.run(
            [str(PYTHON), "-c", "import prusa.link"], capture_output=True).returncode == 0:
        return
    why = f"PrusaLink peer not installed ({PEER}): run scripts/install_prusalink_peer.sh"
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"CI is set but {why}", pytrace=False)
    pytest.skip(why)


def gcode_lines(n: int) -> str:
    """``n`` short moves with PrusaSlicer-style ``M73`` progress lines every 5 %."""
    out = ["M73 P0 R1", "G28", "G90", "M104 S0", "M140 S0"]
    step = max(1, n // 20)
    for i in range(n):
        if i and i % step == 0:
            out.append(f"M73 P{100 * i // n} R{max(0, (n - i) // 600)}")
        out.append(f"G1 X{10 + i % 200} Y{10 + (i // 200) % 180} F6000")
    out.append("M73 P100 R0")
    return "\n".join(out) + "\n"


@dataclass
class PrusaLinkPeer:
    base: Path
    port: int = field(default_factory=free_port)
    api_key: str = field(default_factory=lambda: secrets.token_hex(8))
    password: str = PASSWORD
    firmware: subprocess.Popen[bytes] | None = None
    link: subprocess.Popen[bytes] | None = None
    # why the peer could not be brought back: later tests fail at once with it
    broken: str | None = None
    log_from: int = 0  # where the running PrusaLink's part of prusalink.out begins
    suspect: bool = False  # a test on it failed: the next reset starts the pair afresh

    def says_broken(self) -> bool:
        """PrusaLink logs this when one of its threads died; as a daemon it then restarts
        itself, in the foreground (as here) it goes on half dead (HTTP answers, nothing
        prints). Seen under load, once a session at most."""
        out = self.base / "prusalink.out"
        if not out.exists():
            return False
        with out.open("rb") as f:
            f.seek(self.log_from)
            return b"This instance is now broken" in f.read()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def gcodes(self) -> Path:
        return self.base / "gcodes"

    def prepare(self) -> PrusaLinkPeer:
        self.gcodes.mkdir(parents=True, exist_ok=True)
        # the HTTP digest HA1 (RFC 2617) PrusaLink keeps instead of the password
        digest = hashlib.md5(f"maker:{REALM}:{self.password}".encode()).hexdigest()
        (self.base / "prusa_printer_settings.ini").write_text(
            "[printer]\ntype = MK3S\nname = fabqueue-test\n\n[service::local]\nenable = 1\n"
            f"username = maker\ndigest = {digest}\napi_key = {self.api_key}\n")
        (self.base / "prusalink.ini").write_text(
            f"[daemon]\ndata_dir = {self.base}\npid_file = {self.base}/prusalink.pid\n\n"
            f"[http]\naddress = 127.0.0.1\nport = {self.port}\n\n"
            f"[printer]\nport = {self.base}/ttyPrusa\n"
            f"settings = {self.base}/prusa_printer_settings.ini\ndirectory = {self.gcodes}\n\n"
            "[cameras]\nauto_detect = False\n")
        return self

    def start_firmware(self) -> None:
        log = open(self.base / "firmware.out", "ab")  # noqa: SIM115
        self.firmware = subprocess.Popen(
            [sys.executable, str(HERE / "prusa_firmware.py"), str(self.base / "ttyPrusa")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not (self.base / "ttyPrusa").exists():
            if time.monotonic() > deadline:
                raise TimeoutError("the Prusa firmware responder made no pty")
            time.sleep(0.05)

    def start_link(self) -> None:
        (self.base / "prusalink.pid").unlink(missing_ok=True)
        out = self.base / "prusalink.out"
        self.log_from = out.stat().st_size if out.exists() else 0  # this start's part of it
        log = open(out, "ab")  # noqa: SIM115
        self.link = subprocess.Popen(
            [str(PYTHON), str(HERE / "prusalink_launch.py"), "-f", "-i",
             "-c", str(self.base / "prusalink.ini")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.base)

    def start(self) -> PrusaLinkPeer:
        self.prepare()
        self.start_firmware()
        self.start_link()
        self.wait_ready()
        return self

    def kill_link(self) -> None:
        stop_process(self.link, signal.SIGKILL)

    def stop(self) -> None:
        stop_process(self.link)
        stop_process(self.firmware)

    # -- talking to it ------------------------------------------------------------------------

    def call(self, method: str, path: str, timeout: float = 10, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, self.url + path, timeout=timeout,
                             headers={"X-Api-Key": self.api_key, **kwargs.pop("headers", {})},
                             **kwargs)

    def status(self) -> dict[str, Any]:
        r = self.call("GET", "/api/v1/status")
        r.raise_for_status()
        return dict(r.json())

    def state(self) -> str:
        try:
            return str(self.status()["printer"]["state"])
        except (httpx.HTTPError, ValueError, KeyError):
            return "unreachable"

    def job(self) -> dict[str, Any] | None:
        r = self.call("GET", "/api/v1/job")
        return r.json() if r.status_code == 200 else None

    def logs(self) -> str:
        """The tails of the peer's two logs, for an error that says why it failed."""
        out = []
        for name in ("prusalink.out", "firmware.out"):
            path = self.base / name
            text = path.read_text(errors="replace")[-2500:] if path.exists() else "(none)"
            out.append(f"--- {path} (tail) ---\n{text}")
        return "\n".join(out)

    def storage_ready(self) -> bool:
        """PrusaLink attached its local storage (named): else every upload answers 500."""
        try:
            storages = self.status().get("storage", [])
        except (httpx.HTTPError, ValueError):
            return False
        return any(s.get("path") == "/local" and s.get("name") for s in storages)

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        no_storage = False
        while (state := self.state()) not in ("IDLE", "READY", "FINISHED", "STOPPED") \
                or not self.storage_ready():
            if state in ("IDLE", "READY", "FINISHED", "STOPPED"):
                # up and idle, but its storage is not attached: it attaches at once with the
                # printer, so this is a refused folder, not a slow start; say so soon
                no_storage = True
                deadline = min(deadline, time.monotonic() + STORAGE_GRACE_S)
            if time.monotonic() > deadline:
                why = ("answers, but attached no local storage (it refuses a folder under "
                       f"{', '.join(map(str, REFUSED_ROOTS))})" if no_storage
                       else f"is not ready after {timeout:g} s (state {state})")
                raise TimeoutError(f"PrusaLink peer on {self.url} {why}; folder {self.base}\n"
                                   f"{self.logs()}")
            for proc in (self.firmware, self.link):
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"a PrusaLink peer process exited with {proc.returncode}"
                                       f" ({proc.args[1]})\n{self.logs()}")
            time.sleep(0.2)

    def wait_idle(self, timeout: float = 40) -> None:
        """Until FINISHED/STOPPED (which linger ≥ 11 s) have turned into IDLE/READY."""
        deadline = time.monotonic() + timeout
        while self.state() not in ("IDLE", "READY"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"PrusaLink peer stays {self.state()}")
            time.sleep(0.3)

    def wait_held(self, timeout: float = 90) -> None:
        """Until the print a :meth:`hold` asked for is PAUSED; else fail with what the peer
        is doing and its logs' tails (why it did not pause is then in them)."""
        deadline = time.monotonic() + timeout
        while (state := self.state()) != "PAUSED":
            if time.monotonic() > deadline:
                flag = "still there" if (self.base / "ttyPrusa.hold").exists() else "taken"
                raise AssertionError(f"the PrusaLink peer's print was not held after "
                                     f"{timeout:g} s: it is {state}, the hold flag {flag}\n"
                                     f"{self.logs()}")
            time.sleep(0.1)

    def hold(self, on: bool = True) -> None:
        """Make the next print pause at its first fan-on (see prusa_firmware.py), or not."""
        flag = self.base / "ttyPrusa.hold"
        flag.touch() if on else flag.unlink(missing_ok=True)

    def reset(self) -> None:
        """Back to running and idle, with no files of ours. A print an earlier test left
        running is stopped; a pair that stays stuck (seen once on a heavily overloaded
        machine: a print that never ended) is started afresh, so one test's trouble does not
        fail every test after it."""
        if self.broken:
            raise RuntimeError(f"the PrusaLink peer failed earlier in this session: {self.broken}")
        self.hold(False)
        if self.suspect or self.says_broken():  # afresh, as its daemon mode would restart
            # (and after any failed test: a peer half dead in a way not known yet must not
            # fail every later test of the session, now that all modules share it)
            self.suspect = False
            stop_process(self.link, signal.SIGKILL)
            stop_process(self.firmware, signal.SIGKILL)
        try:
            self._back_to_idle()
        except (TimeoutError, RuntimeError, httpx.HTTPError):
            stop_process(self.link, signal.SIGKILL)
            stop_process(self.firmware, signal.SIGKILL)
            try:
                self._back_to_idle()
            except (TimeoutError, RuntimeError, httpx.HTTPError) as exc:
                self.broken = str(exc)
                raise
        for path in self.gcodes.glob("*.gcode"):
            path.unlink()

    def _back_to_idle(self) -> None:
        if self.firmware is None or self.firmware.poll() is not None:
            self.start_firmware()
        if self.link is None or self.link.poll() is not None:
            self.start_link()
        if self.state() in ("PRINTING", "PAUSED", "ATTENTION"):
            job = self.job()
            if job:
                self.call("DELETE", f"/api/v1/job/{job['id']}")
        self.wait_ready()
        self.wait_idle()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test on the peer marks it suspect (this module is a plugin: conftest.py)."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when == "call":
        peer = getattr(item, "funcargs", {}).get("prusalink")
        if isinstance(peer, PrusaLinkPeer):
            peer.suspect = True


@pytest.fixture(scope="session")
def prusalink_peer() -> Iterator[PrusaLinkPeer]:
    require_prusalink()
    runs = runs_root()
    prune_runs(runs)
    base = runs / f"run-{os.getpid()}-{secrets.token_hex(3)}"
    base.mkdir()
    peer = PrusaLinkPeer(base)
    try:
        yield peer.start()
    finally:
        peer.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def prusalink(prusalink_peer: PrusaLinkPeer) -> PrusaLinkPeer:
    prusalink_peer.reset()
    return prusalink_peer
