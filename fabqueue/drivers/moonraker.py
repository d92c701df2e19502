"""Moonraker driver: one Klipper printer behind Moonraker's HTTP API (verified on 0.11.0).

A print is one request: ``POST /server/files/upload`` with ``print=true`` stores the file in
``gcodes/fabqueue/<job name>`` and starts it. The status poll is one request too
(``/printer/objects/query`` of ``print_stats``, ``virtual_sdcard``, ``display_status``, the
heaters and ``webhooks``, which carries Klippy's own state and message).

How our print ended comes from ``print_stats`` (``complete``/``cancelled``/``error``) while
its ``filename`` is still ours; a Klippy that shut down or restarted under a running print
is INTERRUPTED (a restarted Klippy forgets the print: ``standby`` with no file). After a
worker restart ``find`` recognises the print by file name, in ``print_stats`` or, once over,
in ``/server/history``, so it is never started twice.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fabqueue.core.reasons import N_, reason
from fabqueue.drivers.base import DriverError, DriverOffline, MachineState, MachineStatus, Outcome
from fabqueue.drivers.http import UPLOAD_TIMEOUT_S, HttpHost
from fabqueue.drivers.octoprint import remote_name
from fabqueue.drivers.tracking import TrackedPrint

HOST = "Moonraker"
FOLDER = "fabqueue"
QUERY = ("/printer/objects/query?print_stats&virtual_sdcard&display_status&extruder"
         "&heater_bed&webhooks")
CANCEL_WAIT_S = 5.0
HISTORY_LIMIT = 100

PRINT_STATES = {
    "printing": MachineState.RUNNING,
    "paused": MachineState.PAUSED,
    "standby": MachineState.IDLE,
    "complete": MachineState.IDLE,
    "cancelled": MachineState.IDLE,
    "error": MachineState.IDLE,  # the print failed; Klippy itself is fine
}
ENDED = {"complete": Outcome.DONE, "cancelled": Outcome.CANCELLED, "error": Outcome.FAILED}
ACTIVE = ("printing", "paused")
HISTORY_ENDED = {"completed": Outcome.DONE, "cancelled": Outcome.CANCELLED,
                 "error": Outcome.FAILED}  # klippy_shutdown, klippy_disconnect, interrupted …


def klippy_down(state: str, message: str) -> DriverError:
    """Klippy not ready: shut down or in error is ERROR, starting or gone is OFFLINE."""
    text = reason("klippy_not_ready", N_("Klipper is not ready ({state}): {message}"),
                  state=state, message=message.strip() or state)
    if state in ("shutdown", "error"):
        return DriverError(text, code="klippy_" + state)
    return DriverOffline(text)


def time_left(progress: float | None, elapsed: float | None) -> float | None:
    """Klipper gives no estimate: extrapolate the print time from the file position."""
    if not progress or elapsed is None or progress <= 0.0 or progress >= 1.0:
        return 0.0 if progress is not None and progress >= 1.0 else None
    return max(0.0, elapsed / progress - elapsed)


class MoonrakerDriver:
    """One Klipper printer. ``status()`` never raises; other calls raise DriverError."""

    def __init__(self, url: str, api_key: str | None = None, *, timeout_s: float = 5.0) -> None:
        headers = {"X-Api-Key": api_key} if api_key else {}
        self.http = HttpHost(HOST, url, headers=headers, timeout_s=timeout_s)
        self._print = TrackedPrint()  # its name: Klipper's filename of our print

    @staticmethod
    def path_for(job_name: str) -> str:
        return f"{FOLDER}/{remote_name(job_name)}"

    def _result(self, method: str, path: str, **kwargs: Any) -> Any:
        body = self.http.json(method, path, **kwargs)
        return body.get("result", body) if isinstance(body, dict) else body

    def _server_info(self) -> dict[str, Any]:
        return self._result("GET", "/server/info") or {}

    def _klippy_message(self) -> str:
        try:
            return str((self._result("GET", "/printer/info") or {}).get("state_message", ""))
        except DriverError:
            return ""

    def _check_ready(self) -> None:
        state = str(self._server_info().get("klippy_state", "disconnected"))
        if state != "ready":
            raise klippy_down(state, self._klippy_message())

    def _objects(self) -> dict[str, Any]:
        """The status objects; a Klippy that isn't ready raises with its own message."""
        try:
            result = self._result("GET", QUERY)
        except DriverOffline:
            raise
        except DriverError:
            self._check_ready()  # 503 "Klippy Disconnected" etc.: say why in Klipper's words
            raise
        status = (result or {}).get("status") or {}
        hooks = status.get("webhooks") or {}
        if hooks.get("state", "ready") != "ready":
            raise klippy_down(str(hooks.get("state")), str(hooks.get("state_message", "")))
        return status

    # -- Driver protocol ----------------------------------------------------------------------

    def connect(self) -> None:
        self._check_ready()

    def close(self) -> None:
        self.http.close()

    def start(self, job_name: str, program: Path) -> None:
        """Upload ``program`` to ``gcodes/fabqueue/`` and start it, in one request.

        No status request first (it would cost every dispatch a round trip): a busy printer
        answers ``print_started: false``. Where Moonraker is set to queue uploads
        (``queue_gcode_uploads``), the queued entry is taken off again: a job must never
        start later by itself, after the worker has given up on it."""
        name = remote_name(job_name)
        try:
            with program.open("rb") as handle:
                body = self.http.json(
                    "POST", "/server/files/upload", timeout_s=max(self.http.timeout_s,
                                                                  UPLOAD_TIMEOUT_S),
                    files={"file": (name, handle, "application/octet-stream")},
                    data={"root": "gcodes", "path": FOLDER, "print": "true"})
        except DriverError as exc:
            ps = self._objects().get("print_stats") or {} if exc.code == "refused" else {}
            if ps.get("filename") == self.path_for(job_name):
                # Moonraker won't overwrite the file Klipper has loaded (403): never twice
                raise DriverError(reason("job_file_loaded", N_(
                    "the printer has this job loaded already ({state}); it is not sent again"),
                    state=str(ps.get("state"))), code="busy") from exc
            raise
        body = body.get("result", body) if isinstance(body, dict) else {}
        if not body.get("print_started"):
            if body.get("print_queued"):
                self._unqueue(self.path_for(job_name))
            self._objects()  # a Klippy that isn't ready raises here, in Klipper's words
            raise DriverError(reason("printer_busy", N_("the printer is already printing "
                                                        "something")), code="busy")
        self._print.start(self.path_for(job_name))

    def _unqueue(self, path: str) -> None:
        queued = (self._result("GET", "/server/job_queue/status") or {}).get("queued_jobs")
        ids = [j["job_id"] for j in queued or [] if j.get("filename") == path]
        if ids:
            self._result("DELETE", "/server/job_queue/job", params={"job_ids": ",".join(ids)})

    def status(self) -> MachineStatus:
        try:
            return self._status(self._objects())
        except DriverOffline as exc:
            return MachineStatus(state=MachineState.OFFLINE, message=exc.reason,
                                 job_name=self._print.name)
        except DriverError as exc:
            # Klippy shut down (or the host refused us): a print we were running is lost.
            lost = self._print.name and self._print.outcome is None
            if lost and exc.code.startswith("klippy_"):
                self._print.outcome = Outcome.INTERRUPTED
            return MachineStatus(state=MachineState.ERROR, message=exc.reason,
                                 job_name=self._print.name, outcome=self._print.outcome)

    def _status(self, objects: dict[str, Any]) -> MachineStatus:
        ps = objects.get("print_stats") or {}
        sd = objects.get("virtual_sdcard") or {}
        display = objects.get("display_status") or {}
        text = str(ps.get("state", "standby"))
        state = PRINT_STATES.get(text, MachineState.IDLE)
        filename = ps.get("filename") or None
        fraction = sd.get("progress", display.get("progress"))
        fraction = float(fraction) if fraction is not None else None
        elapsed = ps.get("print_duration")
        # print_duration excludes pauses and heating; without it (0 before the first move)
        # the wall-clock total is the better base for an estimate.
        base = elapsed or ps.get("total_duration")
        running = state in (MachineState.RUNNING, MachineState.PAUSED)
        status = MachineStatus(
            state=state, job_name=filename,
            progress=round(fraction * 100.0, 2) if fraction is not None and (
                running or text == "complete") else None,
            time_left_s=time_left(fraction, base) if running else None,
            elapsed_s=float(elapsed) if elapsed is not None else None,
            temperatures=self._temperatures(objects),
            message=str(ps.get("message")) if text == "error" and ps.get("message") else None,
            extra={"klipper_state": text, "file_position": sd.get("file_position")},
        )
        ours = self._print.ours(filename)
        if ours and running:
            self._print.seen_running = True
        # not ours once it ran (or after the grace): Klippy restarted or printed another
        status.outcome = self._print.ended(text, ours, ended=ENDED, active=ACTIVE)
        if status.outcome is not None and status.job_name is None:
            status.job_name = self._print.name
        if status.outcome is Outcome.FAILED and status.message is None:
            status.message = reason("klipper_print_error", N_("Klipper ended the print with "
                                                              "an error"))
        return status

    @staticmethod
    def _temperatures(objects: dict[str, Any]) -> dict[str, dict[str, float | None]]:
        out: dict[str, dict[str, float | None]] = {}
        for name, key in (("extruder", "tool0"), ("heater_bed", "bed")):
            heater = objects.get(name)
            if isinstance(heater, dict) and "temperature" in heater:
                out[key] = {"actual": heater.get("temperature"), "target": heater.get("target")}
        return out

    def find(self, job_name: str) -> MachineStatus | None:
        """Re-attach to ``job_name`` if it is printing, paused, or ended under our name."""
        path = self.path_for(job_name)
        try:
            objects = self._objects()
        except DriverError:
            return None
        ps = objects.get("print_stats") or {}
        if ps.get("filename") == path:
            if self._print.name != path:
                self._print.start(path, running=ps.get("state") in ACTIVE)
            return self._status(objects)
        past = self._history(path)
        if past is None:
            return None  # never started under this name (or Moonraker forgot it)
        outcome = HISTORY_ENDED.get(str(past.get("status")), Outcome.INTERRUPTED)
        # Ended while no worker watched: keep reporting it, so the worker records the end.
        self._print.start(path)
        self._print.outcome = outcome
        return MachineStatus(
            state=PRINT_STATES.get(str(ps.get("state", "standby")), MachineState.IDLE),
            job_name=path, progress=100.0 if outcome is Outcome.DONE else None,
            elapsed_s=past.get("print_duration"), outcome=outcome,
            temperatures=self._temperatures(objects),
            extra={"history_status": past.get("status")})

    def _history(self, path: str) -> dict[str, Any] | None:
        """The newest ``/server/history`` entry of ``path``, if any."""
        try:
            result = self._result("GET", f"/server/history/list?limit={HISTORY_LIMIT}"
                                         "&order=desc")
        except DriverError:
            return None
        for job in (result or {}).get("jobs") or []:
            if job.get("filename") == path:
                return dict(job)
        return None

    def pause(self) -> None:
        self._result("POST", "/printer/print/pause")

    def resume(self) -> None:
        self._result("POST", "/printer/print/resume")

    def cancel(self) -> None:
        """Cancel the print and wait (≤ 5 s) until Klipper has stopped."""
        ps = self._objects().get("print_stats") or {}
        if ps.get("state") not in ACTIVE:
            return  # nothing to stop
        self._print.cancelled = True
        self._result("POST", "/printer/print/cancel")
        deadline = time.monotonic() + CANCEL_WAIT_S
        while time.monotonic() < deadline:
            ps = self._objects().get("print_stats") or {}
            if ps.get("state") not in ACTIVE:
                return
            time.sleep(0.1)
