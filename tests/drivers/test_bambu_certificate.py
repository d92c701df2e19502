"""With ``ca_file``, a Bambu printer's certificate must name the configured printer: Bambu's
CA signs every printer's certificate (CN = its serial), so a valid chain alone accepted any
printer, or anyone holding one's key, at the configured address (issue 19). The check runs
in the TLS handshake, before the MQTT login or the FTPS login sends the access code.

The printers are the Bambu simulator on real mosquitto and a real implicit-FTPS server
(tests/bambu_fixtures.py), here with certificates signed by a lab CA of the test's own."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fabqueue.core.reasons import decode
from fabqueue.drivers.bambu import BambuDriver
from fabqueue.drivers.base import DriverError
from tests.bambu_fixtures import SERIAL, BambuPeer
from tests.conftest import wait_for

OTHER = "01P00A000000999"


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def lab_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ca = tmp_path_factory.mktemp("ca")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=FabQueue test printer CA", "-keyout", str(ca / "ca.key"),
            "-out", str(ca / "ca.pem"))
    return ca


@pytest.fixture
def printer_with_cert(lab_ca: Path, tmp_path: Path) -> Iterator[Callable[[str], BambuPeer]]:
    """A simulated printer (serial SERIAL) whose broker and FTPS server present a
    certificate from the lab CA naming ``cn``."""
    peers: list[BambuPeer] = []

    def make(cn: str) -> BambuPeer:
        peer = BambuPeer(tmp_path / f"printer-{cn}").prepare()
        run = peer.run
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
                "-keyout", str(run / "key.pem"), "-out", str(run / "leaf.csr"))
        openssl("x509", "-req", "-in", str(run / "leaf.csr"), "-CA", str(lab_ca / "ca.pem"),
                "-CAkey", str(lab_ca / "ca.key"), "-CAcreateserial", "-days", "2",
                "-out", str(run / "cert.pem"))
        peers.append(peer.start())
        return peer

    yield make
    for peer in peers:
        peer.stop()


def driver(peer: BambuPeer, ca: Path) -> BambuDriver:
    return BambuDriver("127.0.0.1", SERIAL, peer.access_code, mqtt_port=peer.mqtt_port,
                       ftps_port=peer.ftps_port, ca_file=str(ca / "ca.pem"))


def logins(peer: BambuPeer) -> int:
    """MQTT logins of FabQueue the broker saw (mosquitto logs each client's id)."""
    log = peer.run / "mosquitto.log"
    return log.read_text().count("as fabqueue-") if log.exists() else 0


def test_the_certificate_of_the_configured_printer_is_accepted(
        printer_with_cert: Callable[[str], BambuPeer], lab_ca: Path, tmp_path: Path) -> None:
    peer = printer_with_cert(SERIAL)
    d = driver(peer, lab_ca)
    d.connect()
    try:
        assert d.status().state.value == "idle"
        program = tmp_path / "p.gcode"
        program.write_text("G28\n")
        d._upload(program, "fabqueue-check.gcode")
        # pyftpdlib answers 226 before it calls on_file_received: the list may lag the reply
        wait_for(lambda: peer.uploads == ["fabqueue-check.gcode"], timeout=10,
                 what=f"the upload recorded (have {peer.uploads})")
    finally:
        d.close()
    assert logins(peer) >= 1


def test_another_printers_certificate_is_refused_before_the_access_code(
        printer_with_cert: Callable[[str], BambuPeer], lab_ca: Path, tmp_path: Path) -> None:
    peer = printer_with_cert(OTHER)  # same CA, valid chain, another printer's name
    d = driver(peer, lab_ca)
    with pytest.raises(DriverError) as err:
        d.connect()
    assert err.value.code == "bad_certificate"
    found = decode(err.value.reason)
    assert found is not None and found.code == "bambu_wrong_printer"
    assert found.params["serial"] == SERIAL and found.params["named"] == OTHER
    assert logins(peer) == 0  # the MQTT login (with the access code) was never sent
    program = tmp_path / "p.gcode"
    program.write_text("G28\n")
    with pytest.raises(DriverError) as upload:
        d._upload(program, "fabqueue-check.gcode")
    assert upload.value.code == "bad_certificate"
    assert peer.uploads == []


def test_without_a_ca_file_nothing_is_compared(
        printer_with_cert: Callable[[str], BambuPeer]) -> None:
    peer = printer_with_cert(OTHER)  # unverified, as before: the lab pinned nothing
    d = BambuDriver("127.0.0.1", SERIAL, peer.access_code, mqtt_port=peer.mqtt_port,
                    ftps_port=peer.ftps_port)
    d.connect()
    d.close()


# -- the upload's deadline ---------------------------------------------------------------------
# An emulated fault, not the printer: no FTPS server can be told to drip its greeting, so a
# TLS socket server plays a printer whose FTPS answers a byte every half second for ever.
def test_a_dripping_ftps_server_is_given_up_at_the_upload_deadline(
        lab_ca: Path, tmp_path: Path) -> None:
    import socket
    import ssl
    import threading
    import time

    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={SERIAL}",
            "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "leaf.csr"))
    openssl("x509", "-req", "-in", str(tmp_path / "leaf.csr"), "-CA", str(lab_ca / "ca.pem"),
            "-CAkey", str(lab_ca / "ca.key"), "-CAcreateserial", "-days", "2",
            "-out", str(tmp_path / "cert.pem"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server = socket.create_server(("127.0.0.1", 0))
    sent = [0]
    hung_up = threading.Event()

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = server.accept()
            with context.wrap_socket(conn, server_side=True) as tls:
                try:
                    while True:  # "220-" lines never end the greeting
                        for byte in b"220-hello\r\n":
                            tls.sendall(bytes([byte]))
                            sent[0] += 1
                            time.sleep(0.5)
                except OSError:
                    hung_up.set()

    threading.Thread(target=serve, daemon=True).start()
    d = BambuDriver("127.0.0.1", SERIAL, "12345678", ftps_port=server.getsockname()[1],
                    ca_file=str(lab_ca / "ca.pem"))
    d.upload_deadline_s = 1.5
    program = tmp_path / "p.gcode"
    program.write_text("G28\n")
    try:
        with pytest.raises(DriverError) as err:
            d._upload(program, "fabqueue-drip.gcode")
    finally:
        server.close()
    found = decode(err.value.reason)
    assert found is not None and found.code == "bambu_upload_deadline", err.value.reason
    assert hung_up.wait(30)
    assert sent[0] < 11, sent[0]  # per-read timeouts alone would have read on for ever
