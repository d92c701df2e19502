"""OctoPrint driver: one printer behind OctoPrint's REST API (verified against 1.11).

Built on ``octorest`` 0.4 where it works, with plain REST calls where it is broken (see
/work/shared/notes/octoprint.md): uploads with form fields, folder creation, file info. Its
``requests.Session`` gives every request a deadline for the whole exchange and a cap on the
answer's size (:mod:`.requests_deadline`), so a hung or dripping OctoPrint can't hang a worker.

Files go to the ``fabqueue/`` folder named after the job (``fq-<job id>.gcode``), so a
restarted worker finds its print again by name (``find``). How a print ended is read from the
file's own print history (``prints.last.success``), which is more reliable than the job
endpoint; a cancel we sent is reported as CANCELLED.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlparse

import requests
from octorest import OctoRest

from fabqueue.core.reasons import N_, reason
from fabqueue.drivers.base import DriverError, DriverOffline, MachineState, MachineStatus, Outcome
from fabqueue.drivers.requests_deadline import AnswerTooBig, DeadlineSession

T = TypeVar("T")
FILE_PREFIX = "fq-"
JOB_FILE_RE = re.compile(r"^fq-(\d+)(?:-[A-Za-z0-9._-]*)?\.gcode$")
UNSAFE_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")
STATUS_CODE_RE = re.compile(r"\((\d{3})\)\s*$")
CANCEL_WAIT_S = 5.0
CONNECT_WAIT_S = 15.0
START_GRACE_S = 10.0  # after select+print, OctoPrint may still say "Operational" briefly
UPLOAD_TIMEOUT_S = 120.0


def file_name_for(job_id: int, label: str = "") -> str:
    """The printer-side file name of a FabQueue job: ``fq-12.gcode`` / ``fq-12-benchy.gcode``."""
    safe = UNSAFE_NAME_RE.sub("_", label).strip("._-")[:40]
    return f"{FILE_PREFIX}{job_id}{'-' + safe if safe else ''}.gcode"


def job_id_from_name(name: str) -> int | None:
    """The job id in a name made by ``file_name_for`` (a path is fine), else None."""
    match = JOB_FILE_RE.match(name.rsplit("/", 1)[-1])
    return int(match.group(1)) if match else None


def remote_name(job_name: str) -> str:
    """The file name a job is stored under: safe characters, ending in ``.gcode``."""
    name = UNSAFE_NAME_RE.sub("_", job_name.rsplit("/", 1)[-1]).strip("._") or "job"
    return name if name.lower().endswith(".gcode") else f"{name}.gcode"


def too_big(exc: AnswerTooBig) -> DriverError:
    return DriverError(reason(
        "host_answer_too_big", N_("{host} answered {path} with more than {limit} bytes; the "
                                  "answer was cut off"),
        host="OctoPrint", path=urlparse(exc.url).path, limit=exc.limit), code="bad_answer")


def state_from_text(text: str) -> MachineState:
    """OctoPrint's state string (``Printing``, ``Offline after error`` …) as a MachineState."""
    lowered = text.lower()
    if "error" in lowered:
        return MachineState.ERROR
    if lowered.startswith(("paus",)):
        return MachineState.PAUSED
    if lowered.startswith(("printing", "starting", "finishing", "cancelling", "resuming",
                           "sending", "transferring")):
        return MachineState.RUNNING
    if lowered.startswith("operational"):
        return MachineState.IDLE
    return MachineState.OFFLINE  # Offline, Closed, Connecting, Detecting serial port …


class OctoPrintDriver:
    """One printer behind OctoPrint. ``status()`` never raises; other calls raise DriverError."""

    def __init__(
        self, url: str, api_key: str, *, timeout_s: float = 5.0, folder: str = "fabqueue"
    ) -> None:
        parsed = urlparse(url)
        if parsed.path not in ("", "/"):
            raise DriverError(reason("octoprint_sub_path", N_(
                "OctoPrint at a sub-path ({path}) is not supported: use its root URL"),
                path=parsed.path), code="bad_url")
        self.url = f"{parsed.scheme}://{parsed.netloc}"
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.folder = folder.strip("/")
        self._client: OctoRest | None = None
        self._session = DeadlineSession(timeout_s)  # octorest passes no timeout of its own
        self._current: str | None = None  # path of the file we started or re-attached to
        self._prints_before = 0  # that file's finished-print count when we started it
        self._started_at = 0.0
        self._seen_running = False
        self._cancelled = False
        self._outcome: Outcome | None = None
        self._folder_ready = False  # our upload folder exists (checked once per connection)

    # -- plumbing ---------------------------------------------------------------------------

    def _octorest(self) -> OctoRest:
        if self._client is None:
            try:
                self._client = OctoRest(url=self.url, apikey=self.api_key, session=self._session)
            except RuntimeError as exc:
                raise self._error(exc) from exc
            except AnswerTooBig as exc:
                raise too_big(exc) from exc
            except requests.RequestException as exc:
                raise DriverOffline(reason("octoprint_unreachable", N_(
                    "OctoPrint at {url} cannot be reached"), url=self.url)) from exc
        return self._client

    def _call(self, action: Callable[[OctoRest], T]) -> T:
        client = self._octorest()
        try:
            return action(client)
        except RuntimeError as exc:
            raise self._error(exc) from exc
        except AnswerTooBig as exc:
            raise too_big(exc) from exc
        except requests.RequestException as exc:
            raise DriverOffline(reason("octoprint_no_answer", N_(
                "OctoPrint at {url} did not answer ({error})"), url=self.url, error=str(exc))) \
                from exc

    def _error(self, exc: RuntimeError) -> DriverError:
        match = STATUS_CODE_RE.search(str(exc))
        status = int(match.group(1)) if match else 0
        return self._error_for(status, str(exc))

    def _error_for(self, status: int, text: str) -> DriverError:
        if status in (401, 403):
            return DriverError(reason("octoprint_forbidden", N_(
                "OctoPrint refused the API key: check the key set for this printer")),
                code="forbidden")
        if status == 404:
            return DriverError(reason("octoprint_no_file", N_("OctoPrint has no such file")),
                               code="not_found")
        if status == 409:
            return DriverError(reason("octoprint_busy", N_(
                "the printer is busy or not ready for this (OctoPrint answered 409)")),
                code="busy")
        return DriverError(reason("octoprint_error", N_("OctoPrint answered {status}: {answer}"),
                                  status=status or "–", answer=text[:200]))

    def _raw(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A plain REST call where octorest is broken; raises DriverError/DriverOffline."""
        self._session.headers["X-Api-Key"] = self.api_key
        try:
            response = self._session.request(method, f"{self.url}{path}", **kwargs)
        except AnswerTooBig as exc:
            raise too_big(exc) from exc
        except requests.RequestException as exc:
            raise DriverOffline(reason("octoprint_no_answer", N_(
                "OctoPrint at {url} did not answer ({error})"), url=self.url, error=str(exc))) \
                from exc
        if not 200 <= response.status_code < 300:
            raise self._error_for(response.status_code, response.text)
        return response

    def _file_path(self, job_name: str) -> str:
        return f"{self.folder}/{remote_name(job_name)}" if self.folder else remote_name(job_name)

    def _file_info(self, path: str) -> dict[str, Any] | None:
        try:
            return self._raw("GET", f"/api/files/local/{quote(path)}").json()
        except DriverError as exc:
            if exc.code == "not_found":
                return None
            raise

    @staticmethod
    def _finished_prints(info: dict[str, Any] | None) -> int:
        prints = (info or {}).get("prints") or {}
        return int(prints.get("success", 0) or 0) + int(prints.get("failure", 0) or 0)

    # -- Driver protocol ----------------------------------------------------------------------

    def connect(self) -> None:
        """Reach OctoPrint and connect it to its printer if it isn't."""
        self._folder_ready = False
        state = self._call(lambda c: c.state())
        if state_from_text(state) is MachineState.OFFLINE:
            self._call(lambda c: c.connect())
            deadline = time.monotonic() + CONNECT_WAIT_S
            while state_from_text(state) is MachineState.OFFLINE:
                if time.monotonic() > deadline:
                    raise DriverOffline(reason("octoprint_no_printer", N_(
                        "OctoPrint could not connect to its printer ({state})"), state=state))
                time.sleep(0.3)
                state = self._call(lambda c: c.state())

    def close(self) -> None:
        self._session.close()

    def start(self, job_name: str, program: Path) -> None:
        """Upload ``program`` as ``fabqueue/<job_name>.gcode``, then select and print it."""
        job = self._call(lambda c: c.job_info())
        if state_from_text(job.get("state", "")) in (MachineState.RUNNING, MachineState.PAUSED):
            raise DriverError(reason("already_printing", N_(
                "the printer is already printing something")), code="busy")
        self._ensure_folder()
        name = remote_name(job_name)
        path = self._file_path(job_name)
        # A reprint of the same file: count its finished prints before this one starts.
        before = self._finished_prints(self._file_info(path))
        with program.open("rb") as handle:
            # One request uploads, selects and starts (octorest would drop these fields).
            self._raw(
                "POST", "/api/files/local",
                files={"file": (name, handle, "application/octet-stream")},
                data={"path": self.folder, "select": "true", "print": "true"},
                timeout=max(self.timeout_s, UPLOAD_TIMEOUT_S),
            )
        self._track(path, before)

    def _track(self, path: str, prints_before: int) -> None:
        self._current = path
        self._prints_before = prints_before
        self._started_at = time.monotonic()
        self._seen_running = False
        self._cancelled = False
        self._outcome = None

    def _ensure_folder(self) -> None:
        if not self.folder or self._folder_ready:
            return
        if self._file_info(self.folder) is None:
            try:
                self._raw("POST", "/api/files/local", files={"foldername": (None, self.folder)})
            except DriverError as exc:
                if exc.code != "busy":  # 409: created meanwhile
                    raise
        self._folder_ready = True

    def status(self) -> MachineStatus:
        try:
            return self._status()
        except DriverError as exc:
            return MachineStatus(state=MachineState.OFFLINE, message=exc.reason,
                                 job_name=remote_name(self._current) if self._current else None)

    def _status(self) -> MachineStatus:
        job = self._call(lambda c: c.job_info())
        state_text = str(job.get("state", ""))
        state = state_from_text(state_text)
        file = (job.get("job") or {}).get("file") or {}
        progress = job.get("progress") or {}
        status = MachineStatus(
            state=state,
            job_name=file.get("name"),
            progress=progress.get("completion"),
            time_left_s=progress.get("printTimeLeft"),
            elapsed_s=progress.get("printTime"),
            message=reason("octoprint_state", N_("OctoPrint reports: {state}"), state=state_text)
            if state is MachineState.ERROR else None,
            extra={"octoprint_state": state_text, "file_path": file.get("path")},
        )
        if state is not MachineState.OFFLINE:
            status.temperatures = self._temperatures()
        if self._current and file.get("path") == self._current and state in (
            MachineState.RUNNING, MachineState.PAUSED
        ):
            self._seen_running = True
        status.outcome = self._ended(state)
        if status.outcome is not None and status.job_name is None and self._current:
            status.job_name = remote_name(self._current)
        return status

    def _temperatures(self) -> dict[str, dict[str, float | None]]:
        try:
            printer = self._call(lambda c: c.printer(exclude=["sd", "state"]))
        except DriverError:
            return {}  # 409 while (re)connecting; empty for ~2 s after connect
        temps = printer.get("temperature") or {}
        return {
            name: {"actual": reading.get("actual"), "target": reading.get("target")}
            for name, reading in temps.items()
            if isinstance(reading, dict) and (name.startswith("tool") or name in ("bed",
                                                                                  "chamber"))
        }

    def _ended(self, state: MachineState) -> Outcome | None:
        """How our print ended, once it has (kept until the next start)."""
        if self._outcome is not None or self._current is None:
            return self._outcome
        if state in (MachineState.RUNNING, MachineState.PAUSED, MachineState.OFFLINE):
            return None
        info = self._file_info(self._current)
        if self._finished_prints(info) > self._prints_before:
            success = ((info or {}).get("prints") or {}).get("last", {}).get("success")
            if self._cancelled:
                self._outcome = Outcome.CANCELLED
            else:
                self._outcome = Outcome.DONE if success else Outcome.FAILED
        elif self._cancelled:
            self._outcome = Outcome.CANCELLED
        elif self._seen_running or time.monotonic() - self._started_at > START_GRACE_S:
            self._outcome = Outcome.INTERRUPTED  # it stopped and OctoPrint recorded no end
        return self._outcome

    def find(self, job_name: str) -> MachineStatus | None:
        """Re-attach to ``job_name`` if it is printing, paused, or was the last print."""
        path = self._file_path(job_name)
        try:
            job = self._call(lambda c: c.job_info())
        except DriverOffline:
            return None
        file = (job.get("job") or {}).get("file") or {}
        state = state_from_text(str(job.get("state", "")))
        if file.get("path") == path and state in (MachineState.RUNNING, MachineState.PAUSED):
            if self._current != path:
                self._track(path, self._finished_prints(self._file_info(path)))
            return self.status()
        info = self._file_info(path)
        if info is None or self._finished_prints(info) == 0:
            return None  # uploaded but never printed (or never uploaded): not started
        last = (info.get("prints") or {}).get("last") or {}
        outcome = Outcome.DONE if last.get("success") else Outcome.FAILED
        if file.get("path") == path and self._current != path:
            # Still the selected file: keep reporting its outcome until the next start.
            self._current = path
            self._outcome = outcome
        return MachineStatus(
            state=state,
            job_name=remote_name(job_name),
            progress=100.0 if last.get("success") else None,
            elapsed_s=last.get("printTime"),
            outcome=outcome,
            extra={"octoprint_state": str(job.get("state", "")), "file_path": path},
        )

    def pause(self) -> None:
        self._call(lambda c: c.pause())

    def resume(self) -> None:
        self._call(lambda c: c.resume())

    def cancel(self) -> None:
        """Cancel the print and wait (≤ 5 s) until the printer has stopped."""
        job = self._call(lambda c: c.job_info())
        if state_from_text(str(job.get("state", ""))) not in (
            MachineState.RUNNING, MachineState.PAUSED
        ):
            return  # nothing to stop
        self._cancelled = True
        self._call(lambda c: c.cancel())
        deadline = time.monotonic() + CANCEL_WAIT_S
        while time.monotonic() < deadline:
            text = str(self._call(lambda c: c.job_info()).get("state", ""))
            if state_from_text(text) not in (MachineState.RUNNING, MachineState.PAUSED):
                return
            time.sleep(0.2)

    def last_print(self, job_name: str) -> tuple[bool | None, float | None]:
        """``(success, print time in s)`` of the file's last print; Nones if never printed."""
        info = self._file_info(self._file_path(job_name))
        last = ((info or {}).get("prints") or {}).get("last") or {}
        return last.get("success"), last.get("printTime")
