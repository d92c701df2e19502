"""PrusaLink driver: one Prusa printer behind PrusaLink's HTTP API v1 (verified on 0.8.1).

A print is one request: ``PUT /api/v1/files/<storage>/<job name>`` with
``Print-After-Upload: ?1`` stores plain ``.gcode`` on the storage the printer reports
(``usb`` on the MK4/XL/MINI, ``local`` on PrusaLink for the MK3) and starts it. The poll is
``/api/v1/status`` (state, temperatures, the job's id and progress) plus ``/api/v1/job``
(the job's file name, which tells us whether the job is ours).

Real PrusaLink differs from the spec (../shared/peers/prusalink/README.md) and the driver
tolerates it: ``storage`` a list or an object; FINISHED/STOPPED linger ≥ 11 s and a start
meanwhile is refused with 409 although the file was stored (the driver waits them out and
starts the stored file); the first poll of a new job may show the previous job's 100 %; a
job may answer 404 right after its upload answered 201 (a grace period).

PrusaLink keeps no history: after a worker restart ``find`` re-attaches by file name while
the job is shown, and a stored file of ours with no job shown means it ran (or was refused)
while no worker watched: INTERRUPTED, never started a second time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from fabqueue.core.reasons import N_, reason
from fabqueue.drivers.base import DriverError, DriverOffline, MachineState, MachineStatus, Outcome
from fabqueue.drivers.http import UPLOAD_TIMEOUT_S, HttpHost
from fabqueue.drivers.octoprint import remote_name
from fabqueue.drivers.tracking import TrackedPrint

HOST = "PrusaLink"
# Not the spec's application/octet-stream: PrusaLink 0.8.1 then sniffs the type of a file it
# has not moved into place yet and answers 500 (and plain text would be refused as 415).
GCODE_TYPE = "text/x.gcode"
USER = "maker"  # PrusaLink's digest user on the printers' built-in PrusaLink
CANCEL_WAIT_S = 5.0
LINGER_WAIT_S = 20.0  # FINISHED/STOPPED stay ≥ 11 s before a new print may start

STATES = {
    "IDLE": MachineState.IDLE, "READY": MachineState.IDLE, "BUSY": MachineState.IDLE,
    "FINISHED": MachineState.IDLE, "STOPPED": MachineState.IDLE,
    "PRINTING": MachineState.RUNNING, "PAUSED": MachineState.PAUSED,
    "ATTENTION": MachineState.PAUSED, "ERROR": MachineState.ERROR,
}
ACTIVE = ("PRINTING", "PAUSED", "ATTENTION")
LINGERING = ("FINISHED", "STOPPED")
ENDED = {"FINISHED": Outcome.DONE, "STOPPED": Outcome.CANCELLED, "ERROR": Outcome.FAILED}


def storages(status: dict[str, Any]) -> list[dict[str, Any]]:
    """``storage`` of /api/v1/status: a list on PrusaLink 0.8, one object in the spec."""
    raw = status.get("storage")
    items = raw if isinstance(raw, list) else [raw] if isinstance(raw, dict) else []
    return [s for s in items if isinstance(s, dict)]


def writable_storage(status: dict[str, Any]) -> str:
    """The storage to upload to: the first writable one the printer reports (``usb`` on
    the printers' own PrusaLink, ``local`` on the Raspberry Pi one)."""
    for item in storages(status):
        path = str(item.get("path") or "").strip("/")
        if path and not item.get("read_only") and item.get("available", True):
            return path
    return "local"


def has_job(status: dict[str, Any]) -> bool:
    """Worth asking /api/v1/job: a job shown, or a state that has one (FINISHED/STOPPED
    come without ``job`` in /api/v1/status on 0.8.1)."""
    state = str((status.get("printer") or {}).get("state"))
    return bool(status.get("job")) or state in (*ACTIVE, *LINGERING, "ERROR")


def job_file(job: dict[str, Any] | None) -> str | None:
    file = (job or {}).get("file") or {}
    name = file.get("display_name") or file.get("name")
    return str(name) if name else None


class PrusaLinkDriver:
    """One Prusa printer. ``status()`` never raises; other calls raise DriverError."""

    def __init__(self, url: str, api_key: str | None = None, *, password: str | None = None,
                 timeout_s: float = 5.0) -> None:
        headers = {"X-Api-Key": api_key} if api_key else {}
        auth = httpx.DigestAuth(USER, password) if password and not api_key else None
        self.http = HttpHost(HOST, url, headers=headers, auth=auth, timeout_s=timeout_s)
        self._storage: str | None = None
        self._print = TrackedPrint()  # its name: the file name of our print
        self._job_id: int | None = None
        self._below_100 = False

    # -- answers ------------------------------------------------------------------------------

    def _status_raw(self) -> dict[str, Any]:
        body = self.http.json("GET", "/api/v1/status")
        return body if isinstance(body, dict) else {}

    def _job(self) -> dict[str, Any] | None:
        """/api/v1/job, or None when there is no job (204, or the 404 a job may answer right
        after its upload answered 201: the start grace covers it)."""
        try:
            body = self.http.json("GET", "/api/v1/job")
        except DriverError as exc:
            if exc.code == "not_found":
                return None
            raise
        return body if isinstance(body, dict) and body else None

    def storage(self, status: dict[str, Any] | None = None) -> str:
        if self._storage is None:
            self._storage = writable_storage(status if status is not None else
                                             self._status_raw())
        return self._storage

    # -- Driver protocol ----------------------------------------------------------------------

    def connect(self) -> None:
        self.http.json("GET", "/api/version")  # a wrong key is refused here, in plain words
        status = self._status_raw()
        self.storage(status)
        printer = status.get("printer") or {}
        if printer.get("state") == "ERROR":
            raise DriverError(self._printer_error(printer), code="printer_error")

    def close(self) -> None:
        self.http.close()

    def start(self, job_name: str, program: Path) -> None:
        """Upload ``program`` and start it in one request; outwait a lingering end."""
        name = remote_name(job_name)
        path = f"/api/v1/files/{self.storage()}/{name}"
        try:
            # the bytes, not a stream: PrusaLink needs a Content-Length (chunked → 500)
            self.http.request(
                "PUT", path, content=program.read_bytes(),
                headers={"Print-After-Upload": "?1", "Overwrite": "?1",
                         "Content-Type": GCODE_TYPE},
                timeout_s=max(self.http.timeout_s, UPLOAD_TIMEOUT_S))
        except DriverError as exc:
            if exc.code != "busy":
                raise
            self._start_stored(job_name, path, exc)
        self._track(name)

    def _start_stored(self, job_name: str, path: str, refused: DriverError) -> None:
        """A 409: the file is stored but not started. Start it once the printer may."""
        name = remote_name(job_name)
        deadline = time.monotonic() + LINGER_WAIT_S
        while True:
            status = self._status_raw()
            state = str((status.get("printer") or {}).get("state"))
            if state in ACTIVE:
                if job_file(self._job()) == name:
                    raise DriverError(reason("job_file_loaded", N_(
                        "the printer has this job loaded already ({state}); it is not sent "
                        "again"), state=state.lower()), code="busy") from refused
                raise DriverError(reason("printer_busy", N_(
                    "the printer is already printing something")), code="busy") from refused
            if state not in LINGERING:
                break
            if time.monotonic() > deadline:
                raise refused
            time.sleep(0.5)
        self.http.request("POST", path)  # start the stored file; a new 409 says why

    def _track(self, name: str, *, running: bool = False) -> None:
        self._print.start(name, running=running)
        self._job_id = None
        self._below_100 = False

    def status(self) -> MachineStatus:
        try:
            status = self._status_raw()
            job = self._job() if has_job(status) else None
        except DriverOffline as exc:
            return MachineStatus(state=MachineState.OFFLINE, message=exc.reason,
                                 job_name=self._print.name)
        except DriverError as exc:
            return MachineStatus(state=MachineState.ERROR, message=exc.reason,
                                 job_name=self._print.name, outcome=self._print.outcome)
        return self._status(status, job)

    def _status(self, status: dict[str, Any], job: dict[str, Any] | None) -> MachineStatus:
        printer = status.get("printer") or {}
        text = str(printer.get("state", "IDLE"))
        state = STATES.get(text, MachineState.IDLE)
        info = {**(status.get("job") or {}), **(job or {})}
        name = job_file(job)
        ours = self._print.ours(name)
        job_state = str(info.get("state") or text)
        running = job_state in ACTIVE and state in (MachineState.RUNNING, MachineState.PAUSED)
        progress = info.get("progress")
        progress = float(progress) if isinstance(progress, int | float) else None
        if name is not None and not ours:
            self._print.seen_running = False  # another job ran since: the end shown is not ours
        if ours and running:
            self._print.seen_running = True
            self._job_id = info.get("id", self._job_id)
            if progress is not None and progress < 100.0:
                self._below_100 = True
            elif not self._below_100:
                progress = None  # the previous job's 100 % on the first poll of a new one
        result = MachineStatus(
            state=state, job_name=name,
            progress=progress if running or job_state == "FINISHED" else None,
            time_left_s=info.get("time_remaining") if running else None,
            elapsed_s=info.get("time_printing"),
            temperatures={
                "tool0": {"actual": printer.get("temp_nozzle"),
                          "target": printer.get("target_nozzle")},
                "bed": {"actual": printer.get("temp_bed"), "target": printer.get("target_bed")},
            },
            message=self._printer_error(printer) if text == "ERROR" else None,
            extra={"prusalink_state": text, "job_id": info.get("id")},
        )
        # 0.8.1 shows no job once it has ended (204): the printer's FINISHED/STOPPED is about
        # the last job it ran, and that was ours (no other seen since)
        last_was_ours = name is None and self._print.seen_running and job_state in ENDED
        # not ours once it ran (or after the grace): PrusaLink restarted (it forgets a serial
        # print) or printed something else
        result.outcome = self._print.ended(job_state, ours or last_was_ours, ended=ENDED,
                                           active=ACTIVE)
        if result.outcome is not None and result.job_name is None:
            result.job_name = self._print.name
        if result.outcome is Outcome.DONE:
            result.progress = 100.0
        return result

    @staticmethod
    def _printer_error(printer: dict[str, Any]) -> str:
        message = str((printer.get("status_printer") or {}).get("message") or "ERROR")
        return reason("prusalink_printer_error", N_("the printer reports an error: {message}"),
                      message=message)

    def find(self, job_name: str) -> MachineStatus | None:
        """Re-attach to ``job_name`` if the printer shows it; a stored file of ours with no
        job shown ran while no worker watched: INTERRUPTED, never started again."""
        name = remote_name(job_name)
        try:
            status = self._status_raw()
            job = self._job() if has_job(status) else None
        except DriverError:
            return None
        if job_file(job) == name:
            if self._print.name != name:
                self._track(name, running=str(job.get("state")) in ACTIVE if job else False)
                self._below_100 = True
            return self._status(status, job)
        try:
            self.http.request("HEAD", f"/api/v1/files/{self.storage(status)}/{name}")
        except DriverError:
            return None  # never sent under this name
        self._track(name)
        self._print.outcome = Outcome.INTERRUPTED
        found = self._status(status, job)
        found.job_name = name
        return found

    def _job_id_now(self) -> int:
        job = self._job()
        if not job or "id" not in job:
            raise DriverError(reason("prusalink_no_job", N_("the printer has no job to "
                                                            "control")), code="no_job")
        return int(job["id"])

    def pause(self) -> None:
        self.http.request("PUT", f"/api/v1/job/{self._job_id_now()}/pause")

    def resume(self) -> None:
        self.http.request("PUT", f"/api/v1/job/{self._job_id_now()}/resume")

    def cancel(self) -> None:
        """Stop the print and wait (≤ 5 s) until PrusaLink says it has stopped."""
        job = self._job()
        if not job or str(job.get("state")) not in ACTIVE:
            return  # nothing to stop
        self._print.cancelled = True
        self.http.request("DELETE", f"/api/v1/job/{int(job['id'])}")
        deadline = time.monotonic() + CANCEL_WAIT_S
        while time.monotonic() < deadline:
            job = self._job()
            if not job or str(job.get("state")) not in ACTIVE:
                return
            time.sleep(0.1)
