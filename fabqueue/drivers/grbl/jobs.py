"""A GRBL job: the program's lines, streamed by a thread of its own with character counting
(or send-and-wait), and how the streamer's stop becomes the job's outcome, the beam off
first. A mixin of :class:`~fabqueue.drivers.grbl.driver.GrblDriver`, whose link, lock and
counters it uses."""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fabqueue.core.reasons import N_, reason
from fabqueue.drivers.base import DriverError, DriverOffline, Outcome
from fabqueue.drivers.grbl.codes import alarm_meaning
from fabqueue.drivers.grbl.streaming import RX_BUFFER_LIMIT, Line, Sent

log = logging.getLogger("fabqueue.drivers.grbl.driver")

LINE_LIMIT = 80  # GRBL's line buffer
END_SYNC = "G4 P0"  # answered only when the planner has run dry: the job's real end
# GRBL reporting Run while nothing moves: no reply for this long, and the reports of that
# time the same (state, position, Bf:) as one from its start, bar a few (noise can garble a
# digit and still parse) and at least STUCK_REPORTS of them (a starved host that reads no
# report proves nothing). Without a reply GRBL runs what it planned (or waits in a sync for
# it), and motion moves MPos in every report (at GRBL's least feed, 1 mm/min, a 0.004 mm
# step comes every 0.24 s); a feed hold reports Hold and a dwell Idle: nothing legitimate
# looks like this for seconds. The
# firmware has been seen wedged so under load (Run, one planner block, lines waiting in its
# RX buffer) and was waited on for ever. Far above what
# test_slow_moves_and_long_holds_outlast_the_ack_timeout needs (2 s moves whose position
# changes in every report, a 3 s hold), and never below the ack timeout.
STUCK_S = 15.0
STUCK_REPORTS = 10
STUCK_SAME = 0.8  # share of the reports that must be the same one


@dataclass
class StreamJob:
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


class JobStreaming:
    """Starting, streaming and ending jobs (frame runs are jobs without the beam)."""

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
            self._job = StreamJob(job_name, prepared, seconds)
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

    def _send(self, job: StreamJob, line: Line, counted: bool, *, quiet: bool = False) -> bool:
        self._poll_paused = quiet
        self._window.push(Sent(line, counted))
        job.max_in_flight = max(job.max_in_flight, self._window.used)
        try:
            self._write(line.text.encode() + b"\n")
        except DriverOffline:
            return False
        return True

    def _send_and_settle(self, job: StreamJob, line: Line, counted: bool) -> bool:
        """Send ``line`` with nothing else in flight and wait for its answer. Status polls
        pause around a `$` line: a byte arriving during an EEPROM write would be lost."""
        quiet = re.match(r"\$\d+=", line.text) is not None
        return (
            self._wait_room(job, line, 0, True)
            and self._send(job, line, counted, quiet=quiet)
            and self._wait_room(job, line, 0, True)
        )

    def _wait_room(self, job: StreamJob, line: Line | None, window: int, exclusive: bool) -> bool:
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
                elif self._stuck_in_run(now, answered_at):
                    log.warning("GRBL on %s reports Run, yet nothing moved or was answered "
                                "for %.0f s (%r); stopping the job", self.port,
                                now - answered_at, self._reports[-1][1])
                    job.stop = "stuck"
        self._poll_paused = False
        return not self._job_stopping(job)

    def _stuck_quiet_s(self) -> float:
        return max(STUCK_S, self.timeout_s)

    def _stuck_in_run(self, now: float, answered_at: float) -> bool:
        """GRBL says Run but neither moves nor takes a line nor a byte (STUCK_S)."""
        quiet_s = self._stuck_quiet_s()
        if self._grbl_state != "Run" or now - answered_at <= quiet_s or not self._reports:
            return False
        current = self._reports[-1][1]
        recent = [report for at, report in self._reports if now - at <= quiet_s]
        already = any(report == current for at, report in self._reports if now - at > quiet_s)
        same = sum(report == current for report in recent)
        return already and len(recent) >= STUCK_REPORTS and same >= STUCK_SAME * len(recent)

    def _job_stopping(self, job: StreamJob) -> bool:
        return job.stop is not None or job.outcome is not None or bool(self._offline_reason)

    def _stop_job(self, why: str) -> None:
        job = self._job
        if job is not None and job.outcome is None and job.stop is None:
            job.stop = why
            self._cv.notify_all()

    def _end_job(self, job: StreamJob) -> None:
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
        if stop in ("error", "stalled", "stuck", "desync", "noisy") or (
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
        elif stop == "stuck":
            self._finish(Outcome.INTERRUPTED, reason(
                "grbl_stuck",
                N_("The laser's controller reported it was running but neither moved nor took "
                   "a line for {seconds} s (after line {acked} of {total}). The laser was "
                   "switched off and the job stopped."),
                seconds=round(self._stuck_quiet_s()), acked=job.acked,
                total=len(job.lines)))
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
