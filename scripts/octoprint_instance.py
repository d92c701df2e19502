#!/usr/bin/env python3
"""Create, start and stop a local OctoPrint 1.11 with its Virtual Printer (tests and demo).

Importable (the pytest fixtures in tests/octoprint_fixtures.py use it) and a CLI:

    python scripts/octoprint_instance.py start --basedir /tmp/op1 --port 5001
    python scripts/octoprint_instance.py stop --basedir /tmp/op1

The config needs no setup wizard and makes no outside connection (discovery, update checks,
tracking and plugin repository are off: verified with strace, /work/shared/notes/octoprint.md).
The Virtual Printer is tuned for speed: no injected errors, heating that returns at once
(ambient 250 °C), and ``M220 S1000`` after connecting.
Standard library only, so it runs with any Python 3.11.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_ENV = "FABQUEUE_OCTOPRINT_VENV"
USER = "admin"
APP_ID = "fabqueue"
PID_FILE = "fabqueue-octoprint.pid"
INSTANCE_FILE = "fabqueue-instance.json"
SPEEDUP_COMMANDS = ["M220 S1000"]  # feed rate ×10 on top of the Virtual Printer's own ×10

CONFIG_YAML = """\
server:
  host: 127.0.0.1
  firstRun: false
  onlineCheck: {enabled: false}
  pluginBlacklist: {enabled: false}
  pythonEolCheck: {enabled: false}
serial: {port: VIRTUAL, baudrate: 115200, autoconnect: true, log: false}
plugins:
  _disabled: [discovery, announcements, tracking, errortracking, softwareupdate, pluginmanager]
  tracking: {enabled: false}
  errortracking: {enabled: false}
  health_check: {disabled: [octoprint_freshness, python_eol]}
  virtual_printer:
    enabled: true
    simulated_errors: []
    ambientTemperature: %(ambient)s
"""


def default_venv() -> Path:
    return Path(os.environ.get(VENV_ENV, REPO_ROOT / ".octoprint" / "venv"))


def octoprint_executable(venv: Path | None = None) -> Path:
    return (venv or default_venv()) / "bin" / "octoprint"


def octoprint_available(venv: Path | None = None) -> bool:
    return octoprint_executable(venv).is_file()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def create_basedir(basedir: Path, *, venv: Path | None = None, ambient_c: float = 250) -> str:
    """Write config, user and application key (once); return the API key."""
    basedir.mkdir(parents=True, exist_ok=True)
    config = basedir / "config.yaml"
    if not config.exists():
        config.write_text(CONFIG_YAML % {"ambient": ambient_c})
    if not (basedir / "users.yaml").exists():
        subprocess.run(
            [str(octoprint_executable(venv)), "--basedir", str(basedir), "user", "add", USER,
             "--password", secrets.token_hex(12), "--admin"],
            check=True, capture_output=True, timeout=120,
        )
    keys = basedir / "data" / "appkeys" / "keys.yaml"
    if not keys.exists():
        keys.parent.mkdir(parents=True, exist_ok=True)
        keys.write_text(f"{USER}:\n- app_id: {APP_ID}\n  api_key: {secrets.token_hex(16)}\n")
    return read_api_key(basedir)


def read_api_key(basedir: Path) -> str:
    for line in (basedir / "data" / "appkeys" / "keys.yaml").read_text().splitlines():
        if "api_key:" in line:
            return line.split("api_key:", 1)[1].strip()
    raise RuntimeError(f"no api_key in {basedir}/data/appkeys/keys.yaml")


def request(url: str, api_key: str, method: str = "GET", body: object = None,
            timeout_s: float = 5.0) -> tuple[int, object]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={
        "X-Api-Key": api_key, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as response:
            text = response.read().decode() or "null"
            return response.status, json.loads(text)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@dataclass
class OctoPrintInstance:
    """One OctoPrint on 127.0.0.1; ``url``, ``api_key`` and ``basedir`` are what clients need."""

    basedir: Path
    port: int = field(default_factory=free_port)
    venv: Path | None = None
    api_key: str = ""
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, ready_timeout_s: float = 60.0, speedup: bool = True) -> OctoPrintInstance:
        """Launch and wait until the Virtual Printer is connected (and sped up)."""
        self.launch()
        return self.ready(ready_timeout_s=ready_timeout_s, speedup=speedup)

    def launch(self) -> OctoPrintInstance:
        """Start the server without waiting (start several, then ``ready()`` each)."""
        self.api_key = create_basedir(self.basedir, venv=self.venv)
        log = (self.basedir / "serve.log").open("ab")
        self.process = subprocess.Popen(
            [str(octoprint_executable(self.venv)), "serve", "--basedir", str(self.basedir),
             "--host", "127.0.0.1", "--port", str(self.port), "--iknowwhatimdoing"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C in the caller's terminal doesn't reach it
        )
        log.close()
        (self.basedir / PID_FILE).write_text(str(self.process.pid))
        (self.basedir / INSTANCE_FILE).write_text(json.dumps(
            {"url": self.url, "api_key": self.api_key, "pid": self.process.pid}))
        return self

    def ready(self, *, ready_timeout_s: float = 60.0, speedup: bool = True) -> OctoPrintInstance:
        self.wait_ready(ready_timeout_s)
        self.wait_operational(ready_timeout_s)
        if speedup:
            self.send(SPEEDUP_COMMANDS)
        return self

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"OctoPrint exited at start-up; see {self.basedir}/serve.log")
            try:
                if request(f"{self.url}/api/version", self.api_key, timeout_s=2)[0] == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass  # not listening yet, or still starting up
            time.sleep(0.2)
        raise TimeoutError(f"OctoPrint on {self.url} did not answer in {timeout_s:g} s")

    def wait_operational(self, timeout_s: float) -> None:
        """Autoconnect to the Virtual Printer takes a moment; connect if it didn't."""
        deadline = time.monotonic() + timeout_s
        asked = False
        while time.monotonic() < deadline:
            status, body = request(f"{self.url}/api/connection", self.api_key)
            state = body.get("current", {}).get("state", "") if isinstance(body, dict) else ""
            if status == 200 and state == "Operational" and self.has_temperatures():
                return
            if status == 200 and state in ("Closed", "Offline", "Error") and not asked:
                request(f"{self.url}/api/connection", self.api_key, "POST",
                        {"command": "connect", "port": "VIRTUAL"})
                asked = True
            time.sleep(0.2)
        raise TimeoutError(f"the Virtual Printer on {self.url} did not become operational")

    def has_temperatures(self) -> bool:
        """/api/printer reports no temperatures for ~2 s after connecting."""
        status, body = request(f"{self.url}/api/printer", self.api_key)
        return status == 200 and isinstance(body, dict) and bool(body.get("temperature"))

    def send(self, commands: list[str]) -> None:
        request(f"{self.url}/api/printer/command", self.api_key, "POST", {"commands": commands})

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM (OctoPrint stops in ~2 s), SIGKILL if it hangs."""
        if self.process is None:
            stop_by_pid_file(self.basedir, timeout_s)
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        (self.basedir / PID_FILE).unlink(missing_ok=True)
        self.process = None

    def kill(self) -> None:
        """Simulate a crash: SIGKILL, no clean shut-down."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
        (self.basedir / PID_FILE).unlink(missing_ok=True)


def stop_by_pid_file(basedir: Path, timeout_s: float = 15.0) -> bool:
    pid_file = basedir / PID_FILE
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    pid_file.unlink(missing_ok=True)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    start = sub.add_parser("start", help="create the basedir if needed and start OctoPrint")
    start.add_argument("--basedir", type=Path, required=True)
    start.add_argument("--port", type=int, default=0, help="0: a free port")
    start.add_argument("--venv", type=Path, default=None)
    start.add_argument("--no-speedup", action="store_true", help="don't send M220 S1000")
    stop = sub.add_parser("stop", help="stop the OctoPrint started in this basedir")
    stop.add_argument("--basedir", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.action == "stop":
        found = stop_by_pid_file(args.basedir)
        print("stopped" if found else f"no running instance recorded in {args.basedir}")
        return 0
    if not octoprint_available(args.venv):
        print(f"OctoPrint not found in {args.venv or default_venv()}; "
              "run scripts/install_octoprint.sh", file=sys.stderr)
        return 2
    instance = OctoPrintInstance(args.basedir.resolve(), port=args.port or free_port(),
                                 venv=args.venv)
    instance.start(speedup=not args.no_speedup)
    instance.process = None  # leave it running after this command exits
    print(json.dumps({"url": instance.url, "api_key": instance.api_key,
                      "basedir": str(instance.basedir)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
