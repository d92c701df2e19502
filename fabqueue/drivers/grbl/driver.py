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
from collections import deque
from collections.abc import Callable
from typing import Literal

from fabqueue.core.reasons import N_, reason
from fabqueue.drivers.base import DriverError, DriverOffline, Outcome
from fabqueue.drivers.grbl import parsing as p
from fabqueue.drivers.grbl.codes import error_meaning
from fabqueue.drivers.grbl.jobs import END_SYNC, JobStreaming, StreamJob
from fabqueue.drivers.grbl.link import LinkError, SerialLink
from fabqueue.drivers.grbl.reporting import Reporting
from fabqueue.drivers.grbl.streaming import Line, Sent, Sync, Window

log = logging.getLogger(__name__)

OPTIONS = re.compile(r"[A-Z*+]*,(\d+),(\d+)")  # [OPT:V,15,128]: planner blocks, RX bytes
STATUS_BUFFER_BIT = 2  # $10 bit 1: status reports carry Bf: (free planner blocks, RX bytes)
MAX_LOST_REPLIES = 200  # beyond this many resynchronisations a line is too noisy to trust
Streaming = Literal["char_count", "send_wait"]
EventCallback = Callable[[str, dict[str, object]], None]


class GrblDriver(JobStreaming, Reporting):
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
        self.connect_notes: list[str] = []  # what connect changed on the controller (reasons)
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
        # the recent reports (when, (state, position, Bf:)): is GRBL stuck in Run (jobs.STUCK_S)
        self._reports: deque[tuple[float, tuple[object, ...]]] = deque()
        self._poll_paused = False
        self._paused = False
        self._job: StreamJob | None = None
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
            self._enable_buffer_reports()
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

    def _enable_buffer_reports(self) -> None:
        """Character counting recovers a lost ``ok`` only through the status report's ``Bf:``
        field, which GRBL sends only with ``$10`` bit 1 (value 2) set; the factory ``$10=1``
        leaves it out, and on a noisy link the job then stalls for good. Set the bit (kept in
        GRBL's EEPROM, the position format bit untouched) and say so in the events."""
        if self.streaming != "char_count":
            return
        mask = int(self.settings.get(10, 1))
        if mask & STATUS_BUFFER_BIT:
            return
        wanted = mask | STATUS_BUFFER_BIT
        # alone, before the poller starts: a byte arriving during the EEPROM write is lost
        self.command(f"$10={wanted}")
        self.settings[10] = float(wanted)
        note = reason("grbl_status_mask_set", N_(
            "The laser's controller had ${setting}={old}; FabQueue set ${setting}={new} so "
            "its status reports show the free buffer (Bf:), which recovers replies lost on "
            "the serial line."), setting=10, old=mask, new=wanted)
        self.connect_notes.append(note)
        log.warning("GRBL on %s: $10=%d had no Bf: in its status reports; set $10=%d",
                    self.port, mask, wanted)
        self._emit("laser:settings", {"setting": "$10", "old": mask, "new": wanted,
                                      "reason": note})

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
        self._reports.append((self._status_at, (status.state, status.position, status.buffer)))
        horizon = self._status_at - 2 * self._stuck_quiet_s()
        while self._reports[0][0] < horizon:
            self._reports.popleft()
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
            lost = self._window.clear_lost()
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
                # numbered among the lines, in write order: a report shows only the lines
                # written before its ``?`` (streaming.Window)
                with self._cv, contextlib.suppress(DriverError):
                    self._window.queried()
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


def _error_code(answer: str) -> int:
    """``error:N`` → N; 0 when GRBL gave no number."""
    tail = answer.partition(":")[2].strip()
    return int(tail) if tail.isdigit() else 0


def _is_dwell(text: str) -> bool:
    return re.match(r"G0*4\b", text.upper()) is not None and text.strip().upper() != END_SYNC
