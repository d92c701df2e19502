"""Implicit FTPS (TLS from the first byte, port 990), as Bambu Lab printers serve their SD card.

``ftplib.FTP_TLS`` speaks explicit FTPS (``AUTH TLS`` on a plain connection); a Bambu
printer expects the TLS handshake at once, so the control socket is wrapped on connect.
Its vsftpd wants the data channel's TLS session to reuse the control channel's (as
ha-bambulab and bambulabs_api found), so each transfer passes that session along.
"""

from __future__ import annotations

import contextlib
import ftplib
import socket
import ssl
from typing import Any


class WrongPrinter(ssl.SSLError):
    """The certificate is valid but names another printer."""

    def __init__(self, named: list[str], serial: str) -> None:
        super().__init__(f"the certificate names {', '.join(named) or 'no printer'}, "
                         f"not {serial}")
        self.named, self.serial = named, serial


def certificate_names(sock: ssl.SSLSocket) -> list[str]:
    """The names a verified peer certificate gives: its subject CN(s) and DNS alt names."""
    cert = sock.getpeercert() or {}
    names = [value for rdn in cert.get("subject", ()) for key, value in rdn
             if key == "commonName"]
    names += [value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"]
    return [str(n) for n in names]


def check_printer(sock: ssl.SSLSocket, serial: str | None) -> None:
    """With a pinned CA, the certificate must name this printer: Bambu's CA signs every
    printer's certificate (CN = its serial), so a valid chain alone would accept any printer
    (or anyone holding one's key) at the configured address. Without a CA file nothing was
    verified and there is nothing to compare (``getpeercert`` is empty)."""
    if not serial or sock.context.verify_mode == ssl.CERT_NONE:
        return
    named = certificate_names(sock)
    if serial.casefold() not in (n.casefold() for n in named):
        raise WrongPrinter(named, serial)


def tls_context(ca_file: str | None, serial: str | None = None) -> ssl.SSLContext:
    """Bambu printers present a self-signed certificate (CN = serial): accept it unless the
    lab pins a CA file. The host name is not checked (the printer is reached by address and
    its certificate names its serial): with a CA file, the serial is compared instead, in
    the handshake itself (MQTT and FTPS send the access code right after it)."""
    context = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.SSLContext(
        ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    if not ca_file:
        context.verify_mode = ssl.CERT_NONE
    elif serial:
        context.sslsocket_class = _printer_socket(serial)
    return context


def _printer_socket(serial: str) -> type[ssl.SSLSocket]:
    class PrinterSocket(ssl.SSLSocket):
        """A TLS socket whose handshake also checks the certificate names ``serial``."""

        def do_handshake(self, block: bool = False) -> None:
            super().do_handshake(block)
            check_printer(self, serial)

    return PrinterSocket


BLOCK = 1 << 20  # bytes per send: ftplib's 8 KiB means a GIL hand-over per 8 KiB, slow
# while the worker's main thread is busy beside an upload (staging); TLS splits it anyway


class ImplicitFTPS(ftplib.FTP_TLS):
    """FTP_TLS whose control connection is TLS from the start; ``prot_p`` follows login.

    ``timeout`` bounds each socket operation only; :meth:`cut` (from a timer) ends the whole
    session at once, for a deadline on the transfer as a whole."""

    _sockets: list[socket.socket]

    def cut(self) -> None:
        """Shut every socket of this session down: a blocked read or write ends now."""
        for sock in list(getattr(self, "_sockets", [])):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _note(self, sock: socket.socket) -> None:
        if not hasattr(self, "_sockets"):
            self._sockets = []
        self._sockets.append(sock)

    def connect(self, host: str = "", port: int = 0, timeout: float = -999,
                source_address: Any = None) -> str:
        if host:
            self.host = host
        if port:
            self.port = port
        if timeout != -999:
            self.timeout = timeout
        raw = socket.create_connection((self.host, self.port), self.timeout)
        self._note(raw)
        self.sock = self.context.wrap_socket(raw, server_hostname=self.host)
        self._note(self.sock)  # the TLS socket took the connection over from ``raw``
        self.af = self.sock.family
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome

    def store(self, name: str, handle: Any) -> str:
        """``STOR name`` from an open binary file, in large blocks."""
        return self.storbinary(f"STOR {name}", handle, blocksize=BLOCK)

    def ntransfercmd(self, cmd: str, rest: Any = None) -> tuple[socket.socket, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        self._note(conn)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host,
                                            session=self.sock.session)  # type: ignore[attr-defined]
            self._note(conn)
        return conn, size
