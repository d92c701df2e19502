"""Bambu Lab driver: one printer in LAN (developer) mode, over MQTT + implicit FTPS.

The printer runs an MQTT broker on 8883 (TLS, self-signed; user ``bblp``, password = the
LAN access code) and an FTPS server on 990 holding its SD card (see OpenBambuAPI,
``mqtt.md`` and ``ftp.md``). Commands go to ``device/<serial>/request``; the printer
publishes ``print.push_status`` reports on ``device/<serial>/report``. P1/A1 printers send
only the fields that changed, so reports are merged into one cached state; ``pushall``
asks for everything (sent on connect, and again when the printer has been quiet a while).

A print: the G-code is uploaded to the SD card root as ``fq-<job>.gcode`` and started with
``print.gcode_file`` (a ``.3mf`` with ``print.project_file``). Its name comes back in
``gcode_file``/``subtask_name``, which is how ``find`` re-attaches after a worker restart;
the printer keeps FINISH/FAILED and the file name until the next print, so a print that
ended while no worker watched is still recognised. Tested against a simulator only.
"""

from __future__ import annotations

import contextlib
import ftplib
import json
import logging
import ssl
import threading
import time
from pathlib import Path, PurePosixPath
from typing import Any

import paho.mqtt.client as mqtt

from fabqueue.core.reasons import N_, reason
from fabqueue.drivers.bambu_hms import hms_reason
from fabqueue.drivers.base import DriverError, DriverOffline, MachineState, MachineStatus, Outcome
from fabqueue.drivers.ftps import ImplicitFTPS, WrongPrinter, tls_context
from fabqueue.drivers.octoprint import remote_name
from fabqueue.drivers.tracking import TrackedPrint

log = logging.getLogger(__name__)

USER = "bblp"
START_WAIT_S = 15.0  # the printer's answer to a print command
QUIET_S = 10.0  # no report for this long: ask for a pushall; no answer either → offline
CANCEL_WAIT_S = 5.0
UPLOAD_TIMEOUT_S = 120.0
REFUSED_CODES = (134, 135)  # bad user name or password / not authorized (CONNACK 4 / 5)

STATES = {
    "IDLE": MachineState.IDLE, "FINISH": MachineState.IDLE, "FAILED": MachineState.IDLE,
    "PREPARE": MachineState.RUNNING, "RUNNING": MachineState.RUNNING,
    "SLICING": MachineState.RUNNING, "PAUSE": MachineState.PAUSED,
}
ACTIVE = ("PREPARE", "RUNNING", "SLICING", "PAUSE")
ENDED = {"FINISH": Outcome.DONE, "FAILED": Outcome.FAILED}


def number(value: Any) -> float | None:
    """A report's number, or None for anything else (a report is outside input)."""
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if result == result and abs(result) < 1e9 else None  # no NaN/huge


def file_stem(name: str) -> str:
    return PurePosixPath(name.rsplit("/", 1)[-1]).stem


#: The largest MQTT packet taken from the printer. Its reports are a few KB (a full
#: ``pushall`` some tens); a broker or host sending more is cut off before the body is read.
MAX_MQTT_PACKET = 1 << 20


class CappedClient(mqtt.Client):
    """paho's client, refusing a packet whose declared length is over ``MAX_MQTT_PACKET``
    before reading its body (paho reads any length the 4-byte header allows, 256 MB).

    paho decodes the remaining length one byte at a time, then reads the body: this hook
    sits on that read (``_sock_recv``, paho's one socket read; tested against the real
    mosquitto so an upgrade that moves it fails a test, not silently)."""

    def _sock_recv(self, bufsize: int) -> bytes:
        packet = self._in_packet
        if packet.get("have_remaining") and packet.get("remaining_length", 0) > MAX_MQTT_PACKET:
            log.warning("Bambu: refused an MQTT packet of %d bytes (limit %d)",
                        packet["remaining_length"], MAX_MQTT_PACKET)
            raise OSError("MQTT packet over the size limit")
        return super()._sock_recv(bufsize)


class BambuDriver:
    """One Bambu printer. ``status()`` never raises; other calls raise DriverError."""

    def __init__(self, host: str, serial: str, access_code: str, *, mqtt_port: int = 8883,
                 ftps_port: int = 990, ca_file: str | None = None,
                 timeout_s: float = 5.0) -> None:
        self.host, self.serial, self.access_code = host, serial, access_code
        self.mqtt_port, self.ftps_port, self.timeout_s = mqtt_port, ftps_port, timeout_s
        self.context = tls_context(ca_file, serial)
        self.upload_deadline_s = UPLOAD_TIMEOUT_S  # a whole upload, login to last byte
        self._lock = threading.Condition()
        self._state: dict[str, Any] = {}
        self._replies: dict[str, dict[str, Any]] = {}
        self._connected = False
        self._refused: int | None = None
        self._last_report = 0.0
        self._asked_at = 0.0
        self._sequence = 0
        self._client: mqtt.Client | None = None
        self._print = TrackedPrint()  # its name: the file name of our print
        self._staged: tuple[str, Path] | None = None  # on the SD card, not started

    # -- MQTT link --------------------------------------------------------------------------

    @property
    def report_topic(self) -> str:
        return f"device/{self.serial}/report"

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, code: Any, _p: Any) -> None:
        with self._lock:
            if code.is_failure:
                self._refused = int(code.value)
                self._lock.notify_all()
                return
            self._connected, self._refused = True, None
            self._lock.notify_all()
        client.subscribe(self.report_topic, qos=0)
        self._publish({"pushing": {"command": "pushall"}})

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, _code: Any, _p: Any) -> None:
        with self._lock:
            self._connected = False
            self._state.clear()  # the printer may reboot meanwhile: trust only new reports
            self._lock.notify_all()

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            body = json.loads(message.payload)
        except ValueError:
            return  # not a report: ignore it rather than kill the network thread
        part = body.get("print") if isinstance(body, dict) else None
        if not isinstance(part, dict):
            return
        with self._lock:
            command = str(part.get("command", ""))
            if command == "push_status":
                self._state.update(part)  # incremental: merge over what we know
                self._last_report = time.monotonic()
            elif "sequence_id" in part and "result" in part:
                self._replies[str(part["sequence_id"])] = part
            self._lock.notify_all()

    def _publish(self, body: dict[str, Any]) -> str:
        with self._lock:
            self._sequence += 1
            seq = str(self._sequence)
        for part in body.values():
            part.setdefault("sequence_id", seq)
        if self._client is None:
            raise DriverOffline(self._unreachable("not connected"))
        info = self._client.publish(f"device/{self.serial}/request", json.dumps(body), qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise DriverOffline(self._unreachable(mqtt.error_string(info.rc)))
        return seq

    def _unreachable(self, detail: str) -> str:
        return reason("bambu_unreachable", N_("the printer at {host}:{port} did not answer "
                                              "({detail})"),
                      host=self.host, port=self.mqtt_port, detail=detail)

    def _wrong_printer(self, exc: WrongPrinter) -> DriverError:
        return DriverError(reason("bambu_wrong_printer", N_(
            "the printer at {host} is not {serial}: its certificate names {named}; nothing "
            "was sent to it"), host=self.host, serial=self.serial,
            named=", ".join(exc.named) or "–"), code="bad_certificate")

    # -- Driver protocol --------------------------------------------------------------------

    def connect(self) -> None:
        client = CappedClient(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=f"fabqueue-{self.serial}-{id(self):x}",
                             protocol=mqtt.MQTTv311)
        client.username_pw_set(USER, self.access_code)
        client.tls_set_context(self.context)
        client.reconnect_delay_set(1, 5)
        client.on_connect, client.on_disconnect = self._on_connect, self._on_disconnect
        client.on_message = self._on_message
        try:
            # the context checks the certificate names self.serial in the TLS handshake,
            # before paho sends the login with the access code
            client.connect(self.host, self.mqtt_port, keepalive=15)
        except WrongPrinter as exc:
            raise self._wrong_printer(exc) from exc
        except (OSError, ssl.SSLError) as exc:
            raise DriverOffline(self._unreachable(str(exc) or type(exc).__name__)) from exc
        self._client = client
        client.loop_start()
        deadline = time.monotonic() + self.timeout_s
        with self._lock:
            self._lock.wait_for(lambda: self._connected or self._refused is not None,
                                timeout=self.timeout_s)
            refused, connected = self._refused, self._connected
        if refused is not None:
            self.close()
            raise DriverError(reason("bambu_refused", N_(
                "the printer refused the access code: check the code set for this printer "
                "({code})"), code=refused), code="forbidden")
        if not connected:
            self.close()
            raise DriverOffline(self._unreachable("no answer to the MQTT login"))
        with self._lock:
            reported = self._lock.wait_for(lambda: bool(self._state),
                                           timeout=max(0.1, deadline - time.monotonic()) + 5)
        if not reported:
            self.close()
            raise DriverOffline(reason("bambu_no_report", N_(
                "the printer sent no report: check its serial number ({serial})"),
                serial=self.serial))

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()
        with self._lock:
            self._connected = False

    def _snapshot(self) -> dict[str, Any]:
        """The cached state; raises DriverOffline when the link or the printer is gone."""
        with self._lock:
            connected, quiet = self._connected, time.monotonic() - self._last_report
            state = dict(self._state)
        if not connected or self._client is None:
            raise DriverOffline(self._unreachable("connection lost"))
        if not state:
            raise DriverOffline(self._unreachable("no report since the connection came back"))
        if quiet > QUIET_S:
            if time.monotonic() - self._asked_at > QUIET_S:
                self._asked_at = time.monotonic()
                self._publish({"pushing": {"command": "pushall"}})
            if quiet > QUIET_S + 2 * self.timeout_s:
                raise DriverOffline(reason("bambu_silent", N_(
                    "the printer stopped reporting its state")))
        return state

    def status(self) -> MachineStatus:
        try:
            return self._status(self._snapshot())
        except DriverOffline as exc:
            return MachineStatus(state=MachineState.OFFLINE, message=exc.reason,
                                 job_name=self._print.name)

    @staticmethod
    def _job_of(state: dict[str, Any]) -> str | None:
        name = state.get("gcode_file") or state.get("subtask_name")
        return str(name).rsplit("/", 1)[-1] if name else None

    def _ours(self, state: dict[str, Any]) -> bool:
        current = self._print.name
        if current is None:
            return False
        name = self._job_of(state)
        return name is not None and (name == current or file_stem(name) == file_stem(current))

    def _status(self, state: dict[str, Any]) -> MachineStatus:
        text = str(state.get("gcode_state", "IDLE")).upper()
        machine = STATES.get(text, MachineState.IDLE)
        running = machine in (MachineState.RUNNING, MachineState.PAUSED)
        percent, minutes = number(state.get("mc_percent")), number(
            state.get("mc_remaining_time"))
        status = MachineStatus(
            state=machine, job_name=self._job_of(state),
            progress=max(0.0, min(100.0, percent)) if percent is not None and (
                running or text == "FINISH") else None,
            time_left_s=max(0.0, minutes) * 60.0 if running and minutes is not None else None,
            temperatures=self._temperatures(state),
            message=hms_reason(state.get("hms")),
            extra={"gcode_state": text, "print_error": state.get("print_error")},
        )
        ours = self._ours(state)
        if ours and running:
            self._print.seen_running = True
        # a stopped print reads FAILED on Bambu printers (cancelled: we asked for it); not
        # ours once it ran (or after the grace): the printer restarted (IDLE, no file) or
        # printed something else
        status.outcome = self._print.ended(text, ours, ended=ENDED, active=ACTIVE)
        if status.outcome is not None:
            status.job_name = self._print.name
            if status.outcome is Outcome.DONE:
                status.progress = 100.0
        if status.outcome is Outcome.FAILED and status.message is None:
            status.message = reason("bambu_print_failed", N_(
                "the printer ended the print with an error ({code})"),
                code=str(state.get("print_error") or 0))
        return status

    @staticmethod
    def _temperatures(state: dict[str, Any]) -> dict[str, dict[str, float | None]]:
        out: dict[str, dict[str, float | None]] = {}
        for key, actual, target in (("tool0", "nozzle_temper", "nozzle_target_temper"),
                                    ("bed", "bed_temper", "bed_target_temper")):
            if actual in state:
                out[key] = {"actual": number(state.get(actual)),
                            "target": number(state.get(target))}
        return out

    @staticmethod
    def _file_name(job_name: str, program: Path) -> str:
        return remote_name(job_name) if program.suffix.lower() != ".3mf" else (
            file_stem(remote_name(job_name)) + ".3mf")

    def _check_free(self, name: str) -> None:
        """Raise when the printer prints (so its file is never overwritten under it)."""
        state = self._snapshot()
        if str(state.get("gcode_state", "")).upper() in ACTIVE:
            state = self._fresh()  # the report that it stopped may be on its way
        if str(state.get("gcode_state", "")).upper() in ACTIVE:
            if file_stem(self._job_of(state) or "") == file_stem(name):
                raise DriverError(reason("job_file_loaded", N_(
                    "the printer has this job loaded already ({state}); it is not sent again"),
                    state=str(state.get("gcode_state"))), code="busy")
            raise DriverError(reason("printer_busy", N_("the printer is already printing "
                                                        "something")), code="busy")

    def stage(self, job_name: str, program: Path) -> None:
        """Upload ``program`` to the SD card without starting it (see ``Stages``)."""
        name = self._file_name(job_name, program)
        self._staged = None
        self._check_free(name)
        self._upload(program, name)
        self._staged = (name, program)

    def start(self, job_name: str, program: Path) -> None:
        """Upload ``program`` to the SD card (unless staged) and start it; never over a
        running print."""
        name = self._file_name(job_name, program)
        staged, self._staged = self._staged, None
        self._check_free(name)
        if staged != (name, program):
            self._upload(program, name)
        if name.endswith(".3mf"):
            command = {"command": "project_file", "param": "Metadata/plate_1.gcode",
                       "url": f"ftp:///{name}", "subtask_name": file_stem(name),
                       "project_id": "0", "profile_id": "0", "task_id": "0",
                       "subtask_id": "0", "bed_type": "auto", "use_ams": False,
                       "timelapse": False, "bed_levelling": True}
        else:
            command = {"command": "gcode_file", "param": f"/sdcard/{name}"}
        self._print.start(name)
        seq = self._publish({"print": command})
        def answered() -> bool:  # refused, or our file shown printing (the cache is current)
            reply = self._replies.get(seq)
            return (reply is not None and str(reply.get("result", "")).lower() != "success"
                    ) or (self._ours(self._state)
                          and str(self._state.get("gcode_state")) in ACTIVE)

        with self._lock:
            self._lock.wait_for(answered, timeout=START_WAIT_S)
            reply = self._replies.pop(seq, None)
        if reply is not None and str(reply.get("result", "")).lower() != "success":
            self._print.name = None
            raise DriverError(reason("bambu_start_refused", N_(
                "the printer refused to start the print: {detail}"),
                detail=str(reply.get("reason") or reply.get("result"))), code="refused")

    def _fresh(self) -> dict[str, Any]:
        """The state after asking for a full report (waits ≤ the timeout for it)."""
        with self._lock:
            before = self._last_report
        self._publish({"pushing": {"command": "pushall"}})
        with self._lock:
            self._lock.wait_for(lambda: self._last_report != before, timeout=self.timeout_s)
        return self._snapshot()

    def _upload(self, program: Path, name: str) -> None:
        ftp = ImplicitFTPS(context=self.context, timeout=min(UPLOAD_TIMEOUT_S,
                                                             self.upload_deadline_s))
        # per-operation timeouts let a dripping server stretch an upload for ever: the
        # whole session ends at the deadline
        expired = threading.Event()
        watchdog = threading.Timer(self.upload_deadline_s,
                                   lambda: (expired.set(), ftp.cut()))
        watchdog.daemon = True
        watchdog.start()
        try:
            ftp.connect(self.host, self.ftps_port)
            ftp.login(USER, self.access_code)
            ftp.prot_p()
            with program.open("rb") as handle:
                ftp.store(name, handle)
        except WrongPrinter as exc:
            raise self._wrong_printer(exc) from exc
        except ftplib.error_perm as exc:
            raise DriverError(reason("bambu_upload_refused", N_(
                "the printer refused the upload: {detail}"), detail=str(exc)),
                code="forbidden" if str(exc).startswith("530") else "refused") from exc
        except (OSError, EOFError, ftplib.Error) as exc:
            if expired.is_set():
                raise DriverOffline(reason("bambu_upload_deadline", N_(
                    "the upload to the printer did not finish within {seconds} s"),
                    seconds=f"{self.upload_deadline_s:g}")) from exc
            raise DriverOffline(reason("bambu_upload_failed", N_(
                "the upload to the printer failed ({detail})"),
                detail=str(exc) or type(exc).__name__)) from exc
        finally:
            watchdog.cancel()
            with contextlib.suppress(OSError):
                ftp.close()

    def find(self, job_name: str) -> MachineStatus | None:
        """Re-attach to ``job_name`` if it is loaded on the printer (running, paused, ended)."""
        try:
            state = self._snapshot()
        except DriverError:
            return None
        name = self._job_of(state)
        if name is None or file_stem(name) != file_stem(remote_name(job_name)):
            return None
        text = str(state.get("gcode_state", "IDLE")).upper()
        if text not in ACTIVE and text not in ENDED:
            return None
        if self._print.name != name:
            self._print.start(name, running=text in ACTIVE)
        return self._status(state)

    def _command(self, command: str) -> None:
        self._snapshot()
        self._publish({"print": {"command": command, "param": ""}})

    def pause(self) -> None:
        self._command("pause")

    def resume(self) -> None:
        self._command("resume")

    def cancel(self) -> None:
        """Stop the print and wait (≤ 5 s) until the printer says it has stopped."""
        state = self._snapshot()
        ours_running = self._print.name is not None and self._print.outcome is None
        if str(state.get("gcode_state", "")).upper() not in ACTIVE and not ours_running:
            return  # nothing to stop (a print we just started is stopped even if not shown)
        self._print.cancelled = True
        self._command("stop")
        with self._lock:
            self._lock.wait_for(lambda: str(self._state.get("gcode_state")) not in ACTIVE,
                                timeout=CANCEL_WAIT_S)
