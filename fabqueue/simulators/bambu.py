"""A Bambu Lab printer in LAN mode, simulated, for tests: no real peer can run here.

It is the printer's logic only: it connects as a client to a real MQTT broker (the tests
start Debian's mosquitto with TLS and a ``bblp`` password) and reads the files an FTPS
server (pyftpdlib, implicit TLS) stored in its ``sd`` folder. Every field and command is
shaped as documented publicly; sources:

- OpenBambuAPI ``mqtt.md`` (github.com/Doridian/OpenBambuAPI): topics
  ``device/<serial>/report`` and ``device/<serial>/request``; the request structure
  ``{"<type>": {"sequence_id", "command", ...}}`` and its echo with ``result`` ("success",
  case-insensitive) and ``reason``; ``pushing.pushall``; ``print.gcode_file`` (``param`` =
  absolute path on the printer); ``print.project_file`` (``param`` = ``Metadata/plate_N.gcode``,
  ``url`` = ``ftp:///<file>.3mf``, ``subtask_name``); ``print.pause``/``resume``/``stop``
  (``param`` empty); ``print.push_status``, which P1-series printers send incrementally
  (only changed fields) and in full after ``pushall``.
- The ``push_status`` fields, as listed in OpenBambuAPI's ``pushall`` example and read by
  ha-bambulab (``pybambu/models.py``): ``gcode_state`` (IDLE, PREPARE, RUNNING, PAUSE, FINISH,
  FAILED), ``mc_percent`` (0-100), ``mc_remaining_time`` (minutes), ``nozzle_temper``,
  ``nozzle_target_temper``, ``bed_temper``, ``bed_target_temper``, ``gcode_file``,
  ``subtask_name``, ``print_error`` (0 = none), ``hms`` (list of ``{"attr", "code"}``),
  ``layer_num``.
- ``M400 U1`` is the G-code pause Bambu Studio inserts ("pause at layer"); a stopped print
  reads FAILED afterwards (ha-bambulab treats a cancelled print so).

Speed: ``lines_per_s`` G-code lines are "printed" per second; ``hold`` pauses the print at
its first ``M106`` (fan on), so a sliced test print is held mid-way, as the Klipper tests do.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

TEMP_RE = re.compile(r"^M(104|109|140|190)\b[^;]*?\bS(\d+(?:\.\d+)?)", re.IGNORECASE)
AMBIENT_C = 25.0
TICK_S = 0.1
REPORT_S = 0.5


class BambuPrinterSimulator:
    def __init__(self, serial: str, access_code: str, sd: Path, *, host: str = "127.0.0.1",
                 port: int = 8883, tls_context: Any = None, lines_per_s: float = 4000.0) -> None:
        self.serial, self.access_code, self.sd = serial, access_code, sd
        self.host, self.port, self.tls_context = host, port, tls_context
        self.lines_per_s = lines_per_s
        self.hold = False
        self.commands: list[dict[str, Any]] = []  # every request seen, for tests
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()  # a request arrived: handle it now, not at the tick
        self._thread: threading.Thread | None = None
        self._client: mqtt.Client | None = None
        self._reset_state()

    def _reset_state(self) -> None:
        self.state: dict[str, Any] = {
            "command": "push_status", "gcode_state": "IDLE", "mc_percent": 0,
            "mc_remaining_time": 0, "nozzle_temper": AMBIENT_C, "nozzle_target_temper": 0.0,
            "bed_temper": AMBIENT_C, "bed_target_temper": 0.0, "gcode_file": "",
            "subtask_name": "", "print_error": 0, "hms": [], "layer_num": 0}
        self._sent: dict[str, Any] = {}
        self._lines: list[str] = []
        self._pos = 0.0
        self._pending: list[dict[str, Any]] = []

    # -- power --------------------------------------------------------------------------

    def power_on(self) -> None:
        """Connect to the broker and start printing whatever is sent (idempotent)."""
        if self._thread is not None:
            return
        self._stop.clear()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"printer-{self.serial}",
                             protocol=mqtt.MQTTv311)
        client.username_pw_set("bblp", self.access_code)
        if self.tls_context is not None:
            client.tls_set_context(self.tls_context)
        client.reconnect_delay_set(0.2, 1)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.connect_async(self.host, self.port, keepalive=10)
        client.loop_start()
        self._client = client
        self._thread = threading.Thread(target=self._run, name="bambu-sim", daemon=True)
        self._thread.start()

    def power_off(self) -> None:
        """Switch the printer off: link gone, and it forgets the print (a reboot)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
        with self._lock:
            self._reset_state()

    def reset(self) -> None:
        with self._lock:
            self._reset_state()
            self.hold = False
            self.commands.clear()
        self._push(full=True)

    # -- MQTT ---------------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, code: Any, _p: Any) -> None:
        if not code.is_failure:
            client.subscribe(f"device/{self.serial}/request", qos=1)
            self._push(full=True)

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            body = json.loads(message.payload)
        except ValueError:
            return
        if isinstance(body, dict):
            with self._lock:
                self.commands.append(body)
                self._pending.append(body)
            self._wake.set()

    def _publish(self, body: dict[str, Any]) -> None:
        if self._client is not None:
            self._client.publish(f"device/{self.serial}/report", json.dumps(body), qos=0)

    def _push(self, *, full: bool = False) -> None:
        """One push_status: everything (after pushall) or only what changed (P1 style)."""
        with self._lock:
            changed = {k: v for k, v in self.state.items() if full or self._sent.get(k) != v}
            self._sent.update(changed)
        if full or changed:
            changed["command"] = "push_status"
            self._publish({"print": changed})

    # -- the printer --------------------------------------------------------------------

    def _run(self) -> None:
        since_report, last = 0.0, time.monotonic()
        while not self._stop.is_set():
            self._wake.wait(TICK_S)
            self._wake.clear()
            now = time.monotonic()
            dt, last = now - last, now
            with self._lock:
                pending, self._pending = self._pending, []
            for body in pending:
                self._handle(body)
            with self._lock:
                self._advance(dt)
            since_report += dt
            if since_report >= REPORT_S or pending:
                since_report = 0.0
                self._push()

    def _handle(self, body: dict[str, Any]) -> None:
        if "pushing" in body:
            self._push(full=True)
            return
        request = body.get("print")
        if not isinstance(request, dict):
            return
        command = str(request.get("command", ""))
        with self._lock:
            result = self._command(command, request)
        if result is not None:
            self._publish({"print": {**request, "result": "success" if not result else "fail",
                                     "reason": result}})

    def _command(self, command: str, request: dict[str, Any]) -> str | None:
        """Carry out a request; '' for success, a reason for failure, None for no echo."""
        s = self.state
        if command in ("gcode_file", "project_file"):
            if s["gcode_state"] in ("PREPARE", "RUNNING", "PAUSE"):
                return "printer is busy"
            try:
                lines, name, subtask = self._load(command, request)
            except (OSError, KeyError, zipfile.BadZipFile):
                return "file not found"
            self._lines, self._pos = lines, 0.0
            s.update(gcode_state="PREPARE", gcode_file=name, subtask_name=subtask,
                     mc_percent=0, print_error=0, hms=[], layer_num=0,
                     mc_remaining_time=self._minutes_left())
            return ""
        if command == "pause" and s["gcode_state"] in ("PREPARE", "RUNNING"):
            s["gcode_state"] = "PAUSE"
        elif command == "resume" and s["gcode_state"] == "PAUSE":
            s["gcode_state"] = "RUNNING"
            self._pos += 1  # past the pause line
        elif command == "stop" and s["gcode_state"] in ("PREPARE", "RUNNING", "PAUSE"):
            s.update(gcode_state="FAILED", nozzle_target_temper=0.0, bed_target_temper=0.0)
        elif command not in ("pause", "resume", "stop"):
            return "unsupported command"
        return ""

    def _load(self, command: str, request: dict[str, Any]) -> tuple[list[str], str, str]:
        if command == "gcode_file":
            name = str(request.get("param", "")).removeprefix("/sdcard/")
            path = self.sd / Path(name).name
            return path.read_text(errors="replace").splitlines(), path.name, path.stem
        name = str(request.get("url", "")).removeprefix("ftp://").removeprefix("file://")
        path = self.sd / Path(name).name
        with zipfile.ZipFile(path) as archive:
            text = archive.read(str(request.get("param", "Metadata/plate_1.gcode")))
        subtask = str(request.get("subtask_name") or path.stem)
        return text.decode(errors="replace").splitlines(), path.name, subtask

    def _minutes_left(self) -> int:
        left = max(0.0, len(self._lines) - self._pos)
        return math.ceil(left / self.lines_per_s / 60.0)

    def _advance(self, dt: float) -> None:
        s = self.state
        if s["gcode_state"] == "PREPARE":
            s["gcode_state"] = "RUNNING"
            return
        if s["gcode_state"] != "RUNNING":
            return
        budget = dt * self.lines_per_s
        while budget > 0 and self._pos < len(self._lines):
            line = self._lines[int(self._pos)].strip()
            if line.upper().startswith("M400 U1") or (self.hold and line.upper().startswith(
                    "M106")):
                self.hold = False
                s["gcode_state"] = "PAUSE"
                break
            match = TEMP_RE.match(line)
            if match:
                key = "nozzle" if match.group(1) in ("104", "109") else "bed"
                s[f"{key}_target_temper"] = float(match.group(2))
            if line.startswith(";LAYER_CHANGE"):
                s["layer_num"] += 1
            self._pos += 1
            budget -= 1
        for key in ("nozzle", "bed"):
            target = s[f"{key}_target_temper"] or AMBIENT_C
            s[f"{key}_temper"] = round(target, 1)
        total = max(1, len(self._lines))
        s["mc_percent"] = min(100, int(self._pos * 100 / total))
        s["mc_remaining_time"] = self._minutes_left()
        if self._pos >= len(self._lines) and s["gcode_state"] == "RUNNING":
            s.update(gcode_state="FINISH", mc_percent=100, mc_remaining_time=0,
                     nozzle_target_temper=0.0, bed_target_temper=0.0)

    def fault(self, attr: int, code: int, *, fail: bool = False) -> None:
        """An HMS message (and, with ``fail``, the print ends FAILED with that error)."""
        with self._lock:
            self.state["hms"] = [{"attr": attr, "code": code}]
            if fail and self.state["gcode_state"] in ("PREPARE", "RUNNING", "PAUSE"):
                self.state.update(gcode_state="FAILED", print_error=code)
            elif self.state["gcode_state"] == "RUNNING":
                self.state["gcode_state"] = "PAUSE"
