"""The GRBL 1.1 laser driver: streams G-code over a serial port (see the package docstring).

Threads: the link's reader (answers, status reports, alarms; :mod:`.link`), a status poller
(`?` at ≤ 5 Hz) and, during a job, a streamer. The caller's thread never waits for the job.

A GRBL controller keeps no job name and a stream cannot outlive the process that feeds it:
``find`` only knows the job this driver instance is running. After a process restart
there is nothing to re-attach to (the laser stopped when its stream did).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from fabqueue.core.reasons import N_, reason
from fabqueue.drivers.base import DriverError, DriverOffline, MachineState, MachineStatus, Outcome
from fabqueue.drivers.grbl import parsing as p
from fabqueue.drivers.grbl.codes import alarm_meaning, error_meaning
from fabqueue.drivers.grbl.link import LinkError, SerialLink
from fabqueue.drivers.grbl.streaming import RX_BUFFER_LIMIT, Line, Sent, Sync, Window

log = logging.getLogger(__name__)

LINE_LIMIT = 80  # GRBL's line buffer
OPTIONS = re.compile(r"[A-Z*+]*,(\d+),(\d+)")  # [OPT:V,15,128]: planner blocks, RX bytes
END_SYNC = "G4 P0"  # answered only when the planner has run dry: the job's real end
MAX_LOST_REPLIES = 200  # beyond this many resynchronisations a line is too noisy to trust
Streaming = Literal["char_count", "send_wait"]
EventCallback = Callable[[str, dict[str, object]], None]


@dataclass
class _Job:
    name: str
    lines: list[Line]
    line_seconds: list[float] | None
    started: float = field(default_factory=time.monotonic)
    acked: int = 0
    ended: float | None = None
    outcome: Outcome | None = None
    message: str | None = None
    stop: str | None = None  # why the streamer must stop: "cancel", "error", "alarm", "offline"
    max_in_flight: int = 0
    lost_replies: int = 0


def prepare_lines(raw: Iterable[str]) -> list[Line]:
    """Strip comments and blanks, keep each line's number; refuse lines GRBL would reject
    for length (error:11) before anything is sent."""
    lines: list[Line] = []
    for number, text in enumerate(raw, start=1):
        code = re.sub(r"\([^)]*\)", "", text.split(";", 1)[0]).strip()
        if not code:
            continue
        if len(code) > LINE_LIMIT:
            raise DriverError(
                f"Line {number} of the program is {len(code)} characters long; GRBL accepts "
                f"at most {LINE_LIMIT}.",
                code="line_too_long",
            )
        lines.append(Line(number, code))
    return lines


class GrblDriver:
    """One GRBL laser on a serial port (see the module docstring)."""

    BANNER_SETTLE_S = 0.08  # GRBL's banner follows a reset within 30-50 ms
    BANNER_TRIES = 2  # a reset byte sent while the firmware still boots can go unheard

    def __init__(
        self,
        port: str,
        baud: int = 115200,
        *,
        homing: bool = False,
        unlock: bool = True,
        timeout_s: float = 10.0,  # silence this long is a lost link (a loaded host is slow)
        status_hz: float = 5.0,
        on_event: EventCallback | None = None,
        streaming: Streaming = "char_count",
    ) -> None:
        self.port, self.baud = port, baud
        self.homing, self.unlock = homing, unlock
        self.timeout_s = timeout_s
        self.status_interval_s = 1.0 / min(max(status_hz, 0.1), 5.0)
        self.on_event = on_event
        self.streaming: Streaming = streaming
        self.settings: dict[int, float] = {}
        self.max_power_s: float = 0.0
        self.noise_lines = 0  # replies that were not GRBL's (garbled, half lines)
        self.extra_replies = 0  # an ok/error with nothing in flight
        self._link: SerialLink | None = None
        self._cv = threading.Condition()
        self._window = Window()
        self._banners = 0
        self._alarm: int | None = None
        self._resetting = False  # our own soft reset: its ALARM:3 is expected
        self._offline_reason: str | None = "not connected"
        self._grbl_state = "Unknown"
        self._position: tuple[float, ...] = ()
        self._buffer: tuple[int, int] | None = None  # free planner blocks, free RX bytes
        self._status_at = 0.0
        self._poll_paused = False
        self._paused = False
        self._job: _Job | None = None
        self._threads: list[threading.Thread] = []
        self._closing = False
        self._last_event: tuple[str, str] | None = None
        self._last_progress_event = 0.0

    @property
    def reader_alive(self) -> bool:
        return self._link is not None and self._link.reader_alive

    # == connection ==========================================================================
    def connect(self) -> None:
        self._link = SerialLink(self.port, self.baud, self._on_line, self._link_lost)
        with self._cv:
            self._window.clear()
            self._offline_reason = None
            self._alarm = None
            self._grbl_state = "Unknown"
        self._closing = False
        try:
            self._link.open()
        except LinkError as err:
            self._offline_reason = str(err)
            raise DriverOffline(f"Cannot open the laser's serial port {self.port}: {err}") from err
        try:
            self._reset_and_wait()
            self._read_options()
            lines = self.command("$$")
            settings = (p.parse(line) for line in lines)
            self.settings = {s.key: s.value for s in settings if isinstance(s, p.Setting)}
            self.max_power_s = self.settings.get(30, 0.0)
            self._require_laser_mode()
            self._unlock_or_home()
        except DriverError:
            self.close()
            raise
        self._spawn(self._poll_loop, "poller")

    def _read_options(self) -> None:
        """``$I`` → ``[OPT:V,15,128]``: this build's planner blocks and RX buffer size."""
        try:
            lines = self.command("$I")
        except DriverOffline:
            raise
        except DriverError:
            return  # not a 1.1 build: keep the defaults
        for line in lines:
            item = p.parse(line)
            if isinstance(item, p.Message) and item.kind == "OPT":
                match = OPTIONS.fullmatch(item.text.strip())
                if match:
                    self._window.planner_blocks = int(match.group(1))
                    self._window.rx_size = int(match.group(2))

    def close(self) -> None:
        with self._cv:
            job_running = self._job is not None and self._job.outcome is None
        if job_running and self._offline_reason is None:
            with contextlib.suppress(DriverError):
                self._write(b"\x18")  # never leave a laser streaming half a job
            self._finish(
                Outcome.INTERRUPTED,
                reason("grbl_closed", N_("The driver was closed during the job.")),
            )
        self._closing = True
        with self._cv:
            self._offline_reason = self._offline_reason or "closed"
            self._stop_job("offline")
            self._cv.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=2)
        self._threads.clear()
        if self._link is not None:
            self._link.close()

    def reset(self) -> None:
        """Clear an alarm: soft reset, then unlock (or home, if configured)."""
        self._reset_and_wait()
        self._unlock_or_home()
        self._emit_state()

    def _require_laser_mode(self) -> None:
        if self.settings.get(32) != 1:
            raise DriverError(
                "The controller on this port is not in laser mode ($32=0): it would pause and "
                "burn at every corner. Set $32=1 on the controller before running laser jobs.",
                code="not_laser_mode",
            )

    def _unlock_or_home(self) -> None:
        if self.homing:
            self.command("$H", timeout_s=max(self.timeout_s, 60.0))
        elif self.unlock:
            self.command("$X")
        with self._cv:
            self._alarm = None

    def _reset_and_wait(self) -> None:
        """Soft reset (0x18) and wait for the banner: bytes sent before it would be lost.
        The real firmware can take a second or more to start (longer under load), and a
        reset byte it receives while still booting is not answered: try twice."""
        for attempt in range(self.BANNER_TRIES):
            try:
                self._wait_banner(self._send_reset())
                return
            except DriverOffline:
                if attempt + 1 == self.BANNER_TRIES or self._offline_reason is not None:
                    raise

    def _send_reset(self) -> int:
        """Write 0x18 (its ALARM:3 is expected); the banner count to wait past."""
        with self._cv:
            banners = self._banners
            self._resetting = True
            self._write(b"\x18")
            return banners

    def _wait_banner(self, banners: int) -> None:
        with self._cv:
            ok = self._cv.wait_for(
                lambda: self._banners > banners or self._offline_reason is not None,
                self.timeout_s,
            )
            # A banner already on its way (a power-up or an earlier reset) can arrive before
            # the one our reset causes: settle until no further banner comes for a moment.
            while ok and self._offline_reason is None:
                seen = self._banners
                if not self._cv.wait_for(
                    lambda seen=seen: self._banners > seen or bool(self._offline_reason),
                    self.BANNER_SETTLE_S,
                ):
                    break
            self._resetting = False
            self._window.clear()  # whatever was in flight before the banner is gone
            if self._offline_reason is not None:
                raise DriverOffline(f"The laser's serial link failed: {self._offline_reason}")
            if not ok:
                raise DriverOffline(
                    f"No GRBL controller answered on {self.port} within {self.timeout_s:g} s "
                    "(no start-up banner after a reset)."
                )

    def command(self, text: str, *, timeout_s: float | None = None) -> list[str]:
        """Send one line, wait for its ``ok``; the informational lines it produced.

        Raises DriverError with GRBL's meaning on ``error:N``."""
        sent = Sent(Line(0, text), counted=False)
        with self._cv:
            self._window.push(sent)
            self._write((text + "\n").encode())
            self._cv.wait_for(
                lambda: sent.answer is not None or self._offline_reason is not None,
                timeout_s or self.timeout_s,
            )
            if sent.answer is None:
                with contextlib.suppress(ValueError):
                    self._window.sent.remove(sent)  # never leave a dead line counted
                if self._offline_reason is not None:
                    raise DriverOffline(f"The laser's serial link failed: {self._offline_reason}")
                raise DriverOffline(f"GRBL did not answer {text!r} in time.")
        if sent.answer != "ok":
            code = _error_code(sent.answer)
            raise DriverError(
                f"GRBL refused {text!r}: error {code}, {error_meaning(code)}.", code="grbl_error"
            )
        return sent.lines

    # == serial I/O ==========================================================================
    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=f"grbl-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _write(self, data: bytes) -> None:
        link = self._link
        if link is None or self._offline_reason is not None:
            raise DriverOffline(f"The laser is not connected ({self._offline_reason}).")
        try:
            link.write(data)
        except LinkError as err:
            raise DriverOffline(f"The laser's serial link failed: {err}") from err

    def _on_line(self, item: p.Item, text: str) -> None:
        """The reader's callback: one parsed line from GRBL."""
        with self._cv:
            if isinstance(item, p.Ok | p.Error):
                sent = self._window.answer()
                if sent is None:
                    self.extra_replies += 1
                    log.info("GRBL on %s: a reply with nothing in flight: %r", self.port, text)
                else:
                    self._on_answer(sent, "ok" if isinstance(item, p.Ok) else text)
            elif isinstance(item, p.Status):
                self._on_status(item)
            elif isinstance(item, p.Alarm):
                code = item.code or 0
                if not (self._resetting and code == 3):
                    self._alarm = code
                    self._stop_job("alarm")
            elif isinstance(item, p.Banner):
                self._banners += 1
                self._window.clear()  # a reset discards whatever GRBL had buffered
                if not self._resetting:
                    self._stop_job("restarted")  # rebooted under us: never stream on blindly
            elif isinstance(item, p.Noise):
                self._on_noise(text)
            elif self._window.sent:
                self._window.sent[0].lines.append(text)
            self._cv.notify_all()

    def _on_noise(self, text: str) -> None:
        self.noise_lines += 1
        if self.noise_lines <= 10 or self.noise_lines % 100 == 0:
            log.info("GRBL on %s: unreadable line %d ignored: %r", self.port,
                     self.noise_lines, text[:120])

    def _on_answer(self, sent: Sent, text: str) -> None:
        sent.answer = text
        job = self._job
        if not sent.counted or job is None or job.outcome is not None:
            return
        job.acked += 1
        if text != "ok" and job.stop is None:
            code = _error_code(text)
            job.stop = "error"
            job.message = reason(
                "grbl_line_error",
                N_("GRBL rejected line {line} ({gcode}): error {number}, {meaning}. "
                   "The job was stopped."),
                line=sent.line.number, gcode=sent.line.text, number=code,
                meaning=error_meaning(code),
            )
        self._emit_progress()

    def _on_status(self, status: p.Status) -> None:
        self._grbl_state = status.state
        self._status_at = time.monotonic()
        if status.position is not None:
            self._position = status.position
        if status.buffer is not None:
            self._buffer = status.buffer
            self._check_sync(status)
        if self._grbl_state.startswith("Hold"):
            self._paused = True
        elif self._grbl_state in ("Run", "Idle"):
            self._paused = False
        self._emit_state()

    def _check_sync(self, status: p.Status) -> None:
        """Character counting against GRBL's own count (``Bf:``); see :mod:`.streaming`."""
        assert status.buffer is not None
        if self._resetting or any(_is_dwell(s.line.text) for s in self._window.sent):
            return  # a dwell holds its ok while GRBL looks idle
        verdict = self._window.on_status(status.state, status.buffer)
        if verdict is Sync.LOST_REPLY:
            lost = self._window.clear()
            log.info("GRBL on %s: %d replies lost on the line; all ran, counting resynchronised",
                     self.port, len(lost))
            job = self._job
            for sent in lost:
                sent.answer = "ok"
                if sent.counted and job is not None and job.outcome is None:
                    job.acked += 1
                    job.lost_replies += 1
            if job is not None and job.outcome is None and job.lost_replies > MAX_LOST_REPLIES:
                job.stop = "noisy"
        elif verdict is Sync.EXTRA_REPLY:
            log.warning("GRBL on %s: holds more bytes than counted (a reply that GRBL never "
                        "sent was read); stopping any job", self.port)
            self._stop_job("desync")

    def _poll_loop(self) -> None:
        while not self._closing and self._offline_reason is None:
            if not self._poll_paused:
                with contextlib.suppress(DriverError):
                    self._write(b"?")
            time.sleep(self.status_interval_s)

    def _link_lost(self, why: str) -> None:
        with self._cv:
            if self._offline_reason is None:
                self._offline_reason = why
                log.warning("GRBL link on %s lost: %s", self.port, why)
            self._stop_job("offline")
            self._cv.notify_all()
        self._emit_state()

    # == jobs ================================================================================
    def start(
        self, job_name: str, program: Path, *, line_seconds: Sequence[float] | None = None
    ) -> None:
        """Stream ``program`` in the background. ``line_seconds``: the planned duration of
        each line of the file (blank and comment lines included), for ``time_left_s``."""
        self.start_lines(job_name, program.read_text().splitlines(), line_seconds=line_seconds)

    def start_lines(
        self, job_name: str, lines: Sequence[str], *, line_seconds: Sequence[float] | None = None
    ) -> None:
        prepared = prepare_lines(lines)
        if line_seconds is not None and len(line_seconds) != len(lines):
            # a stale timing file must not stop a job: fall back to extrapolating
            log.warning(
                "job %s: %d line timings for %d lines; ignoring them",
                job_name, len(line_seconds), len(lines),
            )  # fmt: skip
            line_seconds = None
        with self._cv:
            if self._offline_reason is not None:
                raise DriverOffline(f"The laser is not connected ({self._offline_reason}).")
            if self._job is not None and self._job.outcome is None:
                raise DriverError(f"The laser is busy with {self._job.name!r}.", code="busy")
            if self._alarm is not None or self._grbl_state == "Alarm":
                raise DriverError(
                    "The laser is in an alarm state; reset it before starting a job.", code="alarm"
                )
            self._require_laser_mode()
            seconds = None
            if line_seconds is not None:
                seconds = [float(line_seconds[line.number - 1]) for line in prepared]
            self._job = _Job(job_name, prepared, seconds)
            self._paused = False
        self._spawn(self._stream, "streamer")
        self._emit_state()

    def run_frame(self, lines: Sequence[str]) -> None:
        """Trace the job's outline with the laser off (a frame run before cutting)."""
        if any(re.search(r"M0*[34](?!\d)", line.upper()) for line in lines):
            raise DriverError(
                "A frame run must not switch the laser on (M3/M4).", code="frame_fires_laser"
            )
        self.start_lines("frame", ["M5", *lines, "M5"])

    def _stream(self) -> None:
        job = self._job
        assert job is not None
        window = RX_BUFFER_LIMIT if self.streaming == "char_count" else 0
        with self._cv:
            for line in job.lines:
                if line.text.startswith("$"):
                    # `$` commands answer error:8 unless GRBL is idle, and a settings write
                    # stalls its serial interrupt: let the motion finish, then send it alone.
                    if not self._send_and_settle(job, Line(line.number, END_SYNC), False):
                        break
                    if not self._send_and_settle(job, line, True):
                        break
                elif not self._wait_room(job, line, window, False) or not self._send(
                    job, line, True
                ):
                    break
            else:  # a trailing sync: answered once all motion has run
                self._send_and_settle(job, Line(len(job.lines), END_SYNC), False)
        self._end_job(job)

    def _send(self, job: _Job, line: Line, counted: bool, *, quiet: bool = False) -> bool:
        self._poll_paused = quiet
        self._window.push(Sent(line, counted))
        job.max_in_flight = max(job.max_in_flight, self._window.used)
        try:
            self._write(line.text.encode() + b"\n")
        except DriverOffline:
            return False
        return True

    def _send_and_settle(self, job: _Job, line: Line, counted: bool) -> bool:
        """Send ``line`` with nothing else in flight and wait for its answer. Status polls
        pause around a `$` line: a byte arriving during an EEPROM write would be lost."""
        quiet = re.match(r"\$\d+=", line.text) is not None
        return (
            self._wait_room(job, line, 0, True)
            and self._send(job, line, counted, quiet=quiet)
            and self._wait_room(job, line, 0, True)
        )

    def _wait_room(self, job: _Job, line: Line | None, window: int, exclusive: bool) -> bool:
        """Wait (holding the condition) until ``line`` fits in GRBL's buffer; with
        ``exclusive`` or no window, until nothing is unacknowledged. False if the job stops.

        A silent controller is a lost link only when its status reports stop too: a long
        move or a feed hold can delay an ``ok`` for as long as it lasts."""

        def fits() -> bool:
            if self._job_stopping(job):
                return True
            used = self._window.used
            if exclusive or line is None or window == 0:
                return used == 0
            return used + line.size <= window

        answered_at, answered = time.monotonic(), self._window.answers
        while not self._cv.wait_for(fits, 0.25):
            now = time.monotonic()
            if self._window.answers != answered or self._window.used == 0:
                answered_at, answered = now, self._window.answers
            elif now - answered_at > self.timeout_s:
                if now - self._status_at > self.timeout_s:
                    job.stop = "offline"
                elif self._grbl_state == "Idle":
                    job.stop = "stalled"
        self._poll_paused = False
        return not self._job_stopping(job)

    def _job_stopping(self, job: _Job) -> bool:
        return job.stop is not None or job.outcome is not None or bool(self._offline_reason)

    def _stop_job(self, why: str) -> None:
        job = self._job
        if job is not None and job.outcome is None and job.stop is None:
            job.stop = why
            self._cv.notify_all()

    def _end_job(self, job: _Job) -> None:
        """How the streamer's stop becomes the job's outcome; the beam is off whenever the
        link still works (feed hold + soft reset), before the outcome is published."""
        stop = job.stop
        if stop is None:
            with self._cv:
                self._grbl_state = "Idle"  # the trailing G4 P0 was answered: motion is over
            self._finish(Outcome.DONE, None)
            return
        if stop == "cancel":
            return  # finished by cancel() itself
        if stop in ("error", "stalled", "desync", "noisy") or (
            stop == "offline" and self._offline_reason is None
        ):
            self._halt()
        if stop == "error":
            self._finish(Outcome.FAILED, job.message)
        elif stop == "stalled":
            self._finish(Outcome.FAILED, reason(
                "grbl_stalled",
                N_("GRBL stopped acknowledging lines (after line {acked} of {total}) while "
                   "idle: bytes were lost on the link. The job was stopped."),
                acked=job.acked, total=len(job.lines)))
        elif stop == "desync":
            self._finish(Outcome.INTERRUPTED, reason(
                "grbl_desync",
                N_("The laser's serial line is unreliable: a reply arrived that the controller "
                   "never sent (after line {acked} of {total}). The laser was switched off and "
                   "the job stopped."),
                acked=job.acked, total=len(job.lines)))
        elif stop == "noisy":
            self._finish(Outcome.INTERRUPTED, reason(
                "grbl_noisy",
                N_("The laser's serial line loses too many replies ({lost}). The laser was "
                   "switched off and the job stopped; check the USB cable."),
                lost=job.lost_replies))
        elif stop == "restarted":
            self._finish(Outcome.FAILED, reason(
                "grbl_restarted",
                N_("The laser controller restarted during the job (power or USB glitch?); "
                   "the job was stopped.")))
        elif stop == "alarm":
            code = self._alarm or 0
            self._finish(Outcome.FAILED, reason(
                "grbl_alarm_stop",
                N_("GRBL raised ALARM:{number}: {meaning}. The laser stopped; reset it before the "
                   "next job."),
                number=code, meaning=alarm_meaning(code)))
        else:  # "offline": the port failed, or GRBL fell silent (status reports stopped too)
            why = self._offline_reason or f"no answer for {self.timeout_s:g} s"
            self._finish(Outcome.INTERRUPTED, reason(
                "grbl_link_lost", N_("The link to the laser was lost: {why}."), why=why))

    def _halt(self) -> None:
        """Feed hold then soft reset: the laser stops and the buffers are emptied."""
        with contextlib.suppress(DriverError):
            self._write(b"!")
            self._reset_and_wait()
            if self.unlock and not self.homing:
                self.command("$X")
            with self._cv:
                self._alarm = None if self.unlock and not self.homing else 3
                # the reset stopped all motion: a "Run" reported before it is stale, and on a
                # noisy line the next report may be lost too
                self._grbl_state = "Idle" if self._alarm is None else "Alarm"

    def _finish(self, outcome: Outcome, message: str | None) -> None:
        with self._cv:
            job = self._job
            if job is None or job.outcome is not None:
                return
            job.outcome, job.message, job.ended = outcome, message, time.monotonic()
            self._paused = False
            self._cv.notify_all()
        self._emit_progress(force=True)
        self._emit_state()

    # == controls ============================================================================
    def pause(self) -> None:
        self._write(b"!")
        with self._cv:
            self._paused = True
        self._emit_state()

    def resume(self) -> None:
        self._write(b"~")
        with self._cv:
            self._paused = False
        self._emit_state()

    def cancel(self) -> None:
        """The stop button: a soft reset stops motion and laser at once."""
        with self._cv:
            job = self._job
            running = job is not None and job.outcome is None
            if running and job is not None:
                job.stop = "cancel"
            banners = self._send_reset()  # first, before anything that could wait
            self._cv.notify_all()
        if running:
            self._finish(Outcome.CANCELLED,
                         reason("grbl_cancelled", N_("Stopped by the operator.")))
        self._wait_banner(banners)
        if self.unlock and not self.homing:
            self.command("$X")
            with self._cv:
                self._alarm = None

    def find(self, job_name: str) -> MachineStatus | None:
        """The status of ``job_name`` if this driver instance runs (or just ran) it."""
        with self._cv:
            if self._job is None or self._job.name != job_name:
                return None
        return self.status()

    # == status ==============================================================================
    def _machine_state(self) -> MachineState:
        job = self._job
        if self._offline_reason is not None:
            return MachineState.OFFLINE
        if self._alarm is not None or self._grbl_state == "Alarm":
            return MachineState.ERROR
        if self._paused:
            return MachineState.PAUSED
        if (job is not None and job.outcome is None) or self._grbl_state in ("Run", "Jog", "Home"):
            return MachineState.RUNNING
        return MachineState.IDLE

    def status(self) -> MachineStatus:
        with self._cv:
            job = self._job
            state = self._machine_state()
            extra: dict[str, object] = {
                "grbl_state": self._grbl_state,
                "position": list(self._position),
            }
            if self._buffer is not None:
                extra["planner_blocks_free"], extra["rx_bytes_free"] = self._buffer
            if job is None:
                message = self._offline_reason if state is MachineState.OFFLINE else None
                if self._alarm is not None:
                    message = f"ALARM:{self._alarm}: {alarm_meaning(self._alarm)}"
                return MachineStatus(state, message=message, extra=extra)
            total = len(job.lines)
            elapsed = (job.ended or time.monotonic()) - job.started
            extra.update(
                lines_acked=job.acked, lines_total=total, max_unacked_bytes=job.max_in_flight,
                lost_replies=job.lost_replies, noise_lines=self.noise_lines,
            )
            return MachineStatus(
                state,
                job_name=job.name,
                progress=100.0 * self._lines_done(job) / total if total else 100.0,
                elapsed_s=elapsed,
                time_left_s=self._time_left(job, elapsed, self._lines_done(job)),
                message=job.message,
                outcome=job.outcome,
                extra=extra,
            )

    def _lines_done(self, job: _Job) -> int:
        """Lines that have run: GRBL answers a move when it is planned, up to 15 blocks
        before it runs, so the blocks still queued (``Bf:``) are not done yet."""
        if job.outcome is not None or self._buffer is None:
            return job.acked
        queued = max(0, self._window.planner_blocks - self._buffer[0])
        return max(0, job.acked - queued)

    @staticmethod
    def _time_left(job: _Job, elapsed: float, done: int) -> float | None:
        if job.outcome is not None:
            return 0.0
        if job.line_seconds is not None:
            planned_done = sum(job.line_seconds[:done])
            planned_left = sum(job.line_seconds[done:])
            rate = elapsed / planned_done if planned_done > 0 else 1.0
            return planned_left * rate
        if done == 0:
            return None
        return elapsed * (len(job.lines) - done) / done

    # == events ==============================================================================
    def _emit(self, name: str, payload: dict[str, object]) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(name, payload)
        except Exception:  # a broken subscriber must not stop the laser's stream
            log.exception("GRBL on_event callback failed")

    def _emit_state(self) -> None:
        with self._cv:
            key = (self._machine_state().value, self._grbl_state)
            if key == self._last_event:
                return
            self._last_event = key
            job = self._job
        self._emit(
            "laser:state",
            {"state": key[0], "grbl_state": key[1], "job": job.name if job else None},
        )

    def _emit_progress(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_progress_event < 0.5:
            return
        self._last_progress_event = now
        job = self._job
        if job is None:
            return
        total = len(job.lines)
        self._emit(
            "laser:progress",
            {
                "job": job.name,
                "progress": 100.0 * self._lines_done(job) / total if total else 100.0,
                "lines_acked": job.acked,
                "lines_total": total,
                "outcome": job.outcome.value if job.outcome else None,
            },
        )


def _error_code(answer: str) -> int:
    """``error:N`` → N; 0 when GRBL gave no number."""
    tail = answer.partition(":")[2].strip()
    return int(tail) if tail.isdigit() else 0


def _is_dwell(text: str) -> bool:
    return re.match(r"G0*4\b", text.upper()) is not None and text.strip().upper() != END_SYNC
