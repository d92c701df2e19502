"""Pytest fixtures for a simulated Bambu Lab printer on real network parts.

No real Bambu printer can run here, so the printer is three pieces on loopback:
Debian's ``mosquitto`` (MQTT over TLS, a self-signed certificate made with ``openssl``,
a password file for ``bblp``), an implicit-FTPS server (pyftpdlib's TLS handler, TLS from
the first byte) writing to the SD folder, and ``fabqueue.simulators.bambu`` (the printer's
logic, an MQTT client of that broker). ``bambu_peer`` (registered in tests/conftest.py, so
one for every module) starts them once per session;
``bambu`` is the same printer reset for the test. Without mosquitto/openssl/pyftpdlib the
tests skip, except under CI (``CI=true``): there they fail.
"""

from __future__ import annotations

import getpass
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fabqueue.drivers.ftps import tls_context
from tests.conftest import free_port

SERIAL = "01P00A000000001"


def missing(why: str) -> None:
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"CI is set but {why}", pytrace=False)
    pytest.skip(why)


def gcode_lines(n: int, *, pause_at: int | None = None) -> str:
    out = ["M104 S215", "M140 S60"]
    for i in range(n):
        if pause_at is not None and i == pause_at:
            out.append("M400 U1")
        out.append(f"G1 X{i % 200} Y{(i * 7) % 200} E0.01")
    out.append("M104 S0")
    return "\n".join(out) + "\n"


MOSQUITTO_CONF = """\
per_listener_settings false
# run as root (a CI container), mosquitto would switch to its own user and not read these
user {user}
allow_anonymous false
password_file {run}/passwd
persistence false
log_dest file {run}/mosquitto.log
listener {port} 127.0.0.1
certfile {run}/cert.pem
keyfile {run}/key.pem
"""


@dataclass
class BambuPeer:
    run: Path
    serial: str = SERIAL
    access_code: str = field(default_factory=lambda: f"{secrets.randbelow(10**8):08d}")
    mqtt_port: int = field(default_factory=free_port)
    ftps_port: int = field(default_factory=free_port)
    broker: subprocess.Popen[bytes] | None = None
    ftps: Any = None
    printer: Any = None
    uploads: list[str] = field(default_factory=list)  # file names, as each STOR completed

    @property
    def sd(self) -> Path:
        return self.run / "sd"

    def prepare(self) -> BambuPeer:
        for tool in ("mosquitto", "mosquitto_passwd", "openssl"):
            if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
                missing(f"{tool} is not installed (scripts/setup.sh --test)")
        try:
            import OpenSSL  # noqa: F401
            import pyftpdlib  # noqa: F401
        except ImportError:
            missing("pyftpdlib/pyopenssl are not installed (pip install -e '.[test]')")
        self.sd.mkdir(parents=True, exist_ok=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", f"/CN={self.serial}", "-keyout", str(self.run / "key.pem"),
                        "-out", str(self.run / "cert.pem")], check=True, capture_output=True)
        subprocess.run(["mosquitto_passwd", "-b", "-c", str(self.run / "passwd"), "bblp",
                        self.access_code], check=True, capture_output=True)
        (self.run / "mosquitto.conf").write_text(MOSQUITTO_CONF.format(
            run=self.run, port=self.mqtt_port, user=getpass.getuser()))
        return self

    def start_broker(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.broker = subprocess.Popen([binary, "-c", str(self.run / "mosquitto.conf")],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.mqtt_port), timeout=1).close()
                return
            except OSError:
                if self.broker.poll() is not None:
                    raise RuntimeError((self.run / "mosquitto.log").read_text()) from None
                time.sleep(0.1)
        log = self.run / "mosquitto.log"
        raise RuntimeError(f"mosquitto did not listen on {self.mqtt_port}: "
                           f"{log.read_text(errors='replace')[-2000:] if log.exists() else ''}")

    def kill_broker(self) -> None:
        if self.broker is not None:
            self.broker.kill()
            self.broker.wait()
            self.broker = None

    def start_ftps(self) -> None:
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.handlers import TLS_FTPHandler
        from pyftpdlib.servers import ThreadedFTPServer

        peer = self

        class ImplicitTLSHandler(TLS_FTPHandler):
            """Implicit FTPS: the TLS handshake comes first, before the 220 greeting."""

            certfile = str(self.run / "cert.pem")
            keyfile = str(self.run / "key.pem")
            tls_control_required = True
            tls_data_required = True

            def handle(self) -> None:
                self.secure_connection(self.ssl_context)  # the greeting waits for TLS

            def handle_ssl_established(self) -> None:
                super().handle()

            def on_file_received(self, file: str) -> None:
                peer.uploads.append(Path(file).name)

        authorizer = DummyAuthorizer()
        authorizer.add_user("bblp", self.access_code, str(self.sd), perm="elradfmw")
        ImplicitTLSHandler.authorizer = authorizer
        ImplicitTLSHandler.passive_ports = None
        self.ftps = ThreadedFTPServer(("127.0.0.1", self.ftps_port), ImplicitTLSHandler)
        threading.Thread(target=self.ftps.serve_forever, kwargs={"timeout": 0.5},
                         daemon=True).start()

    def start(self) -> BambuPeer:
        from fabqueue.simulators.bambu import BambuPrinterSimulator

        self.start_broker()
        self.start_ftps()
        self.printer = BambuPrinterSimulator(self.serial, self.access_code, self.sd,
                                             port=self.mqtt_port,
                                             tls_context=tls_context(None))
        self.printer.power_on()
        return self

    def power_off(self) -> None:
        """The printer switched off: its broker (it runs on the printer) and its logic."""
        self.kill_broker()
        self.printer.power_off()

    def power_on(self) -> None:
        self.start_broker()
        self.printer.power_on()

    def stop(self) -> None:
        if self.printer is not None:
            self.printer.power_off()
        self.kill_broker()
        if self.ftps is not None:
            self.ftps.close_all()

    def reset(self) -> None:
        if self.broker is None or self.broker.poll() is not None:
            self.power_on()
        self.printer.reset()
        for path in self.sd.iterdir():
            path.unlink()
        self.uploads.clear()

    def state(self) -> dict[str, Any]:
        return dict(self.printer.state)

    def starts(self, name: str) -> int:
        """How many print commands named the file ``name`` (the never-twice checks)."""
        return sum(1 for c in self.printer.commands if isinstance(c.get("print"), dict)
                   and c["print"].get("command") in ("gcode_file", "project_file")
                   and name in str(c["print"].get("param", "")) + str(c["print"].get("url", "")))


@pytest.fixture(scope="session")
def bambu_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BambuPeer]:
    peer = BambuPeer(tmp_path_factory.mktemp("bambu")).prepare().start()
    try:
        yield peer
    finally:
        peer.stop()


@pytest.fixture
def bambu(bambu_peer: BambuPeer) -> BambuPeer:
    bambu_peer.reset()
    return bambu_peer
