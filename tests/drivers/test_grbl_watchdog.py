"""GRBL wedged in Run: the streamer must not wait for ever (a noisy-line CI run on a loaded
machine hung 600 s with the firmware reporting ``<Run|MPos:1.2,0.4,0|Bf:14,108>`` report
after report, nothing answered, nothing moving). No firmware here: reports are fed to the
driver's reader callback as the link would (their RX buffer empty, so the count stays in
step), with the watchdog's times shortened."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from fabqueue.drivers.grbl import GrblDriver, jobs
from fabqueue.drivers.grbl import parsing as p
from fabqueue.drivers.grbl.jobs import StreamJob
from fabqueue.drivers.grbl.streaming import Line, Sent


@pytest.fixture
def driver(monkeypatch: pytest.MonkeyPatch) -> GrblDriver:
    monkeypatch.setattr(jobs, "STUCK_S", 0.8)
    monkeypatch.setattr(jobs, "STUCK_REPORTS", 4)
    driver = GrblDriver("/dev/null", timeout_s=0.3)  # never connected: no port, no threads
    driver._offline_reason = None
    return driver


def feed(driver: GrblDriver, reports: Iterator[str], stop: threading.Event) -> threading.Thread:
    """The reader: one status report every 0.05 s until ``stop``."""

    def run() -> None:
        while not stop.wait(0.05):
            text = next(reports)
            driver._on_line(p.parse(text), text)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def wait_for_room(driver: GrblDriver, reports: Callable[[int], str], seconds: float) -> StreamJob:
    """A job with one unanswered line, the streamer waiting for GRBL's whole buffer."""
    job = StreamJob("wedged", [Line(1, "S100"), Line(2, "S101")], None)
    driver._job = job
    driver._window.push(Sent(job.lines[0], True))  # its ok never comes
    stop = threading.Event()
    thread = feed(driver, (reports(i) for i in range(10**6)), stop)

    def give_up() -> None:  # the test's own deadline, as a cancel would stop the stream
        job.stop = job.stop or "cancel"

    timer = threading.Timer(seconds, give_up)
    timer.start()
    try:
        with driver._cv:
            driver._wait_room(job, job.lines[1], 0, True)
    finally:
        timer.cancel()
        stop.set()
        thread.join()
    return job


def test_run_without_motion_nor_replies_stops_the_job(driver: GrblDriver) -> None:
    def wedged(i: int) -> str:  # every 7th report garbled by the line, yet well formed
        x = "1.210" if i % 7 == 3 else "1.200"
        return f"<Run|MPos:{x},0.400,0.000|Bf:14,128|FS:0,0>"

    job = wait_for_room(driver, wedged, 5)
    assert job.stop == "stuck"


def test_moving_or_held_is_never_stuck(driver: GrblDriver) -> None:
    # a slow move's position changes in every report; a feed hold reports Hold
    def moving(i: int) -> str:
        return f"<Run|MPos:{i * 0.004:.3f},0.000,0.000|Bf:14,128|FS:1,0>"

    assert wait_for_room(driver, moving, 2.0).stop == "cancel"  # only the timer stopped it
    held = "<Hold:0|MPos:1.200,0.400,0.000|Bf:14,128|FS:0,0>"
    assert wait_for_room(driver, lambda _: held, 2.0).stop == "cancel"
