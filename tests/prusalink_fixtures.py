"""Pytest fixtures that run the real PrusaLink 0.8.1 in front of our Prusa-firmware responder.

Use from a test module::

    from tests.prusalink_fixtures import prusalink, prusalink_peer  # noqa: F401

``prusalink_peer`` (session-scoped) starts, ONCE per session, the responder
(tests/peers/prusa_firmware.py, on a pseudo-terminal) and PrusaLink
(``scripts/install_prusalink_peer.sh`` installs it under ``<repo>/.peers/prusalink``;
started through tests/peers/prusalink_launch.py: no mDNS, no 8 s boot wait) on a free
loopback port. ``prusalink`` is the same peer, reset for the test: running, idle, no files.
PrusaLink refuses storage under /tmp, so its folder is under ``<repo>/.peers/prusalink/runs``.
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
REALM = "Administrator"  # prusa/link/web/lib/auth.py
PASSWORD = "fabqueue-test-pass"


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
        log = open(self.base / "prusalink.out", "ab")  # noqa: SIM115
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

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while self.state() not in ("IDLE", "READY", "FINISHED", "STOPPED"):
            if time.monotonic() > deadline:
                tail = (self.base / "prusalink.out").read_text(errors="replace")[-3000:]
                raise TimeoutError(f"PrusaLink peer not ready on {self.url}: {tail}")
            for proc in (self.firmware, self.link):
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"a PrusaLink peer process exited ({proc.args[1]})")
            time.sleep(0.2)

    def wait_idle(self, timeout: float = 40) -> None:
        """Until FINISHED/STOPPED (which linger ≥ 11 s) have turned into IDLE/READY."""
        deadline = time.monotonic() + timeout
        while self.state() not in ("IDLE", "READY"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"PrusaLink peer stays {self.state()}")
            time.sleep(0.3)

    def hold(self, on: bool = True) -> None:
        """Make the next print pause at its first fan-on (see prusa_firmware.py), or not."""
        flag = self.base / "ttyPrusa.hold"
        flag.touch() if on else flag.unlink(missing_ok=True)

    def reset(self) -> None:
        """Back to running and idle, with no files of ours. A print an earlier test left
        running is stopped; a pair that stays stuck (seen once on a heavily overloaded
        machine: a print that never ended) is started afresh, so one test's trouble does not
        fail every test after it."""
        self.hold(False)
        try:
            self._back_to_idle()
        except (TimeoutError, RuntimeError, httpx.HTTPError):
            stop_process(self.link, signal.SIGKILL)
            stop_process(self.firmware, signal.SIGKILL)
            self._back_to_idle()
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


@pytest.fixture(scope="session")
def prusalink_peer() -> Iterator[PrusaLinkPeer]:
    require_prusalink()
    runs = PEER / "runs"
    runs.mkdir(parents=True, exist_ok=True)
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
