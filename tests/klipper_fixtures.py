"""Pytest fixtures that run a real Klipper printer: Klippy (no MCU, batch mode) + Moonraker.

Use from a test module (``klipper_peer`` is registered once in tests/conftest.py: a session
fixture imported into several test modules is a fixture of each, a peer started once per
module)::

    from tests.klipper_fixtures import klipper  # noqa: F401

``klipper_peer`` (session-scoped) starts Klippy and Moonraker ONCE per session on a free
loopback port in a temporary folder (``scripts/install_klipper_peer.sh`` installs them
under ``<repo>/.peers/klipper``; see ../shared/peers/klipper/README.md). ``klipper`` is the
same peer, reset for the test: no print running, Klippy ready, history and our files gone.
Without the installed peer the tests skip, except under CI (``CI=true``): there it fails.

Batch mode runs G-code as fast as Klippy can (~11k lines/s): tests make long files (for
~seconds of printing) or put a ``PAUSE`` line in a file to be held mid-print.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port, stop_process

REPO = Path(__file__).resolve().parents[1]
PEER = Path(os.environ.get("FABQUEUE_KLIPPER_PEER", REPO / ".peers" / "klipper"))
READY_TIMEOUT_S = 60.0

# Sliced test prints end in ~1 s in batch mode. To be mid-print in a queue test, ``hold()``
# makes the print PAUSE at its first fan-on (M106), a standard Klipper macro override; the
# test then resumes or kills what it likes. Reset turns it off again.
HOLD_MACRO = """
[gcode_macro M106]
rename_existing: M106.1
variable_hold: 0
gcode:
  {% if printer["gcode_macro M106"].hold|int %}PAUSE{% endif %}
  M106.1 {rawparams}
"""

MOONRAKER_CONF = """\
[server]
host: 127.0.0.1
port: {port}
klippy_uds_address: {run}/klippy.sock

[machine]
provider: none
validate_service: False
validate_config: False

[authorization]
trusted_clients:
    127.0.0.1/32

[announcements]
enable_moonlight: False

[file_manager]
enable_object_processing: False
# as a lab may set it: an upload to a busy printer is queued (the driver must undo that)
queue_gcode_uploads: True

[job_queue]

[history]
"""


def require_klipper() -> None:
    missing = [p for p in (PEER / "moonraker-venv/bin/moonraker", PEER / "klippy-venv/bin/python",
                           PEER / "klipper/klippy/klippy.py") if not p.exists()]
    if not missing:
        return
    why = f"Klipper peer not installed ({missing[0]}): run scripts/install_klipper_peer.sh"
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"CI is set but {why}", pytrace=False)
    pytest.skip(why)


def gcode_lines(n: int, *, pause_at: int | None = None) -> str:
    """``n`` short moves (≈ n / 11000 s of batch-mode printing), optionally a PAUSE line."""
    out = ["G28", "G90", "M104 S0", "M140 S0"]
    for i in range(n):
        if pause_at is not None and i == pause_at:
            out.append("PAUSE")
        out.append(f"G1 X{10 + i % 200} Y{10 + (i // 200) % 180} F60000")
    return "\n".join(out) + "\n"


@dataclass
class KlipperPeer:
    base: Path
    port: int = field(default_factory=free_port)
    klippy: subprocess.Popen[bytes] | None = None
    moonraker: subprocess.Popen[bytes] | None = None
    api_key: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def gcodes(self) -> Path:
        return self.base / "gcodes"

    def prepare(self) -> KlipperPeer:
        for sub in ("config", "gcodes", "logs", "run", "misc", "database", "comms"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        (self.base / "misc" / "usb.ids").touch()  # else Moonraker downloads one at start
        cfg = (PEER / "printer.cfg").read_text().replace("GCODES_DIR", str(self.gcodes))
        cfg += HOLD_MACRO
        (self.base / "config" / "printer.cfg").write_text(cfg)
        (self.base / "config" / "moonraker.conf").write_text(
            MOONRAKER_CONF.format(port=self.port, run=self.base / "run"))
        return self

    def start_klippy(self) -> None:
        log = open(self.base / "logs" / "klippy.out", "ab")  # noqa: SIM115
        self.klippy = subprocess.Popen(
            [str(PEER / "klippy-venv/bin/python"), str(PEER / "klipper/klippy/klippy.py"),
             str(self.base / "config/printer.cfg"), "-o", "/dev/null",
             "-d", str(PEER / "klipper.dict"), "-a", str(self.base / "run/klippy.sock"),
             "-I", str(self.base / "run/printer_pty"),
             "-l", str(self.base / "logs/klippy.log")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def start_moonraker(self) -> None:
        log = open(self.base / "logs" / "moonraker.out", "ab")  # noqa: SIM115
        self.moonraker = subprocess.Popen(
            [str(PEER / "moonraker-venv/bin/moonraker"), "-d", str(self.base),
             "-c", str(self.base / "config/moonraker.conf"),
             "-l", str(self.base / "logs/moonraker.log")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def start(self) -> KlipperPeer:
        self.prepare()
        self.start_klippy()
        self.start_moonraker()
        self.wait_ready()
        self.api_key = str(self.call("GET", "/access/api_key"))
        return self

    def kill_klippy(self) -> None:
        stop_process(self.klippy, signal.SIGKILL)

    def kill_moonraker(self) -> None:
        stop_process(self.moonraker, signal.SIGKILL)

    def stop(self) -> None:
        stop_process(self.moonraker)
        stop_process(self.klippy)

    # -- talking to it ------------------------------------------------------------------------

    def call(self, method: str, path: str, timeout: float = 10, **kwargs: Any) -> Any:
        """A Moonraker call as a trusted loopback client; the ``result`` of its answer."""
        r = httpx.request(method, self.url + path, timeout=timeout, **kwargs)
        r.raise_for_status()
        body = r.json()
        return body.get("result", body) if isinstance(body, dict) else body

    def klippy_state(self) -> str:
        try:
            return str(self.call("GET", "/server/info").get("klippy_state"))
        except (httpx.HTTPError, ValueError):
            return "unreachable"

    def answers(self) -> bool:
        try:
            httpx.get(self.url + "/printer/objects/query?webhooks", timeout=3).raise_for_status()
            return True
        except httpx.HTTPError:
            return False

    def print_state(self) -> dict[str, Any]:
        status = self.call("GET", "/printer/objects/query?print_stats&virtual_sdcard")["status"]
        return {**status["print_stats"], "progress": status["virtual_sdcard"]["progress"]}

    def logs(self) -> str:
        """The tails of the peer's logs, for an error that says why it failed."""
        tail = {p.name: p.read_text(errors="replace")[-1500:]
                for p in sorted((self.base / "logs").glob("*"))}
        return json.dumps(tail, indent=1)

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while self.klippy_state() != "ready":
            if time.monotonic() > deadline:
                raise TimeoutError(f"Klipper peer not ready on {self.url}: {self.logs()}")
            for proc in (self.klippy, self.moonraker):
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"a Klipper peer process exited with {proc.returncode} "
                                       f"({proc.args[1]}): {self.logs()}")
            time.sleep(0.2)

    def gcode(self, script: str) -> None:
        self.call("POST", "/printer/gcode/script", params={"script": script}, timeout=30)

    def hold(self, on: bool = True) -> None:
        """Make prints pause at their first M106 (fan on), or not."""
        self.gcode(f"SET_GCODE_VARIABLE MACRO=M106 VARIABLE=hold VALUE={int(on)}")

    def jobs_in_history(self, filename: str) -> list[dict[str, Any]]:
        jobs = self.call("GET", "/server/history/list?limit=500")["jobs"]
        return [j for j in jobs if j.get("filename") == filename]

    def reset(self) -> None:
        """Bring the peer back to ready and idle, forget history and our files."""
        if self.moonraker is None or self.moonraker.poll() is not None:
            self.start_moonraker()
        if self.klippy is None or self.klippy.poll() is not None:
            self.start_klippy()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while self.klippy_state() not in ("ready", "shutdown", "error"):
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if self.klippy_state() != "ready" or not self.answers():
            # In batch mode a FIRMWARE_RESTART leaves Klippy deaf to API calls (seen with
            # 84104bb): a shut-down or deaf Klippy is restarted as a process instead.
            self.kill_klippy()
            self.start_klippy()
        self.wait_ready()
        if self.print_state()["state"] in ("printing", "paused"):
            self.call("POST", "/printer/print/cancel")
            end = time.monotonic() + 15
            while self.print_state()["state"] in ("printing", "paused"):
                if time.monotonic() > end:
                    raise TimeoutError("the Klipper peer did not stop its print")
                time.sleep(0.1)
        self.hold(False)
        self.call("DELETE", "/server/history/job?all=true")
        if (self.gcodes / "fabqueue").exists():
            self.call("DELETE", "/server/files/directory?path=gcodes/fabqueue&force=true")


@pytest.fixture(scope="session")
def klipper_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KlipperPeer]:
    require_klipper()
    peer = KlipperPeer(tmp_path_factory.mktemp("klipper"))
    try:
        yield peer.start()
    finally:
        peer.stop()


@pytest.fixture
def klipper(klipper_peer: KlipperPeer) -> KlipperPeer:
    klipper_peer.reset()
    return klipper_peer
