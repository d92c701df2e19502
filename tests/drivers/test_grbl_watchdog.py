"""GRBL wedged in Run: the streamer must not wait for ever (a noisy-line CI run on a loaded
machine hung 600 s with the firmware reporting ``<Run|MPos:1.2,0.4,0|Bf:14,108>`` report
after report, nothing answered, nothing moving). The rule's own tests feed reports to the
driver's reader callback as the link would (their RX buffer empty, so the count stays in
step); the last one has a relay make the REAL firmware seem wedged, with the watchdog's
times shortened."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from fabqueue.core.reasons import decode
from fabqueue.drivers.base import MachineState, Outcome
from fabqueue.drivers.grbl import GrblDriver, jobs
from fabqueue.drivers.grbl import parsing as p
from fabqueue.drivers.grbl.jobs import StreamJob
from fabqueue.drivers.grbl.streaming import Line, Sent
from tests.drivers.test_grbl_noisy_line import busy_program
from tests.grbl_fixtures import GrblFirmware, make_grbl_firmware  # noqa: F401
from tests.grbl_relay import GrblRelay


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


class WedgedRelay(GrblRelay):
    """After ``after`` lines GRBL seems wedged as the firmware was: every ``?`` gets the same
    Run report, lines go unanswered; until the driver's reset byte, which reaches the real
    firmware (its banner and what follows are heard again)."""

    WEDGED = b"<Run|MPos:1.200,0.400,0.000|Bf:14,108|FS:0,0>\r\n"

    def __init__(self, firmware_path: str, after: int) -> None:
        self.after, self.wedged = after, False
        self.thawed = False
        super().__init__(firmware_path)

    def _to_firmware(self, data: bytes) -> None:
        if not self.thawed and len(self.lines) >= self.after:
            self.wedged = True
        if self.wedged:
            if 0x18 not in data:
                for _ in range(data.count(b"?")):
                    os.write(self._master, self.WEDGED)
                return
            self.wedged, self.thawed = False, True
            data = data[data.index(0x18):]
        super()._to_firmware(data)

    def _deliver(self, data: bytes) -> None:
        if not self.wedged:
            super()._deliver(data)


def test_real_firmware_seeming_wedged_ends_interrupted_with_the_beam_off(
    make_grbl_firmware: Callable[..., GrblFirmware],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(jobs, "STUCK_S", 4.0)
    firmware = make_grbl_firmware()
    relay = WedgedRelay(firmware.device_path, after=300)
    driver = GrblDriver(relay.device_path, timeout_s=4.0)
    try:
        driver.connect()
        driver.start_lines("wedged", busy_program())
        deadline = time.monotonic() + 120
        while driver.status().outcome is None:
            assert time.monotonic() < deadline, f"the job hangs: {driver.status()}"
            time.sleep(0.2)
        status = driver.status()
        assert status.outcome is Outcome.INTERRUPTED, status.message
        found = decode(status.message)
        assert found is not None and found.code == "grbl_stuck", status.message
        realtime = relay.realtime_bytes()
        assert 0x18 in realtime[realtime.index(ord("!")):]  # feed hold, then reset: beam off
        assert status.state is not MachineState.RUNNING
    finally:
        driver.close()
        relay.close()
