"""The simulated printer and its driver: states, progress from M73, pause/resume/cancel, faults."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fabqueue.core.reasons import render
from fabqueue.drivers.base import Driver, DriverError, DriverOffline, MachineState, Outcome
from fabqueue.drivers.simulated import SimulatedPrinterDriver
from fabqueue.simulators.printer import forget_printer, get_printer, read_gcode


class FakeClock:
    """A clock the test moves by hand, so the simulation is exact and instant."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture()
def gcode(tmp_path: Path) -> Path:
    """A G-code shaped like PrusaSlicer's: 10 minutes estimated, M73 marks, temperatures."""
    lines = ["M73 P0 R10", "M140 S60", "M104 S215", "M190 S60", "M109 S215", "G28"]
    for step in range(1, 10):
        lines += [f"G1 X{step * 10} Y10 E1"] * 9 + [f"M73 P{step * 10} R{10 - step}"]
    lines += ["M104 S0", "M73 P100 R0"]
    path = tmp_path / "job.gcode"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def device_id(request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"sim-{request.node.name}"
    yield name
    forget_printer(name)


def test_reads_estimate_temperatures_and_progress_marks(gcode: Path) -> None:
    profile = read_gcode(gcode)
    assert profile.estimated_s == 600
    assert (profile.nozzle_c, profile.bed_c) == (215, 60)
    assert profile.progress_lines[0] == (0.0, 1) and profile.progress_lines[-1][0] == 100.0


def test_moves_through_heating_printing_done(gcode: Path, clock: FakeClock,
                                             device_id: str) -> None:
    driver = SimulatedPrinterDriver(device_id, speed=60, heat_s=2, clock=clock)
    assert isinstance(driver, Driver)
    driver.connect()
    idle = driver.status()
    assert idle.state is MachineState.IDLE and idle.extra["simulated"] is True
    driver.start("fq-1.gcode", gcode)  # 600 s estimate / 60 = 10 s of printing
    heating = driver.status()
    assert heating.state is MachineState.RUNNING and render(heating.message) == "heating"
    assert heating.temperatures["tool0"]["target"] == 215
    clock.tick(1)
    assert 22 < driver.status().temperatures["tool0"]["actual"] < 215  # warming up
    clock.tick(1 + 5)
    half = driver.status()
    assert half.extra["sim_state"] == "printing"
    assert half.progress == pytest.approx(50)
    assert half.time_left_s == pytest.approx(5)
    assert half.extra["line"] == read_gcode(gcode).progress_lines[5][1]  # the M73 P50 line
    with pytest.raises(DriverError) as busy:
        driver.start("fq-2.gcode", gcode)
    assert busy.value.code == "busy"
    clock.tick(5)
    done = driver.status()
    assert done.state is MachineState.IDLE and done.outcome is Outcome.DONE
    assert done.progress == 100 and done.job_name == "fq-1.gcode"
    assert done.temperatures["bed"]["target"] == 0


def test_pause_stops_the_clock_and_resume_continues(gcode: Path, clock: FakeClock,
                                                    device_id: str) -> None:
    driver = SimulatedPrinterDriver(device_id, duration_s=20, heat_s=0, clock=clock)
    driver.start("fq-3.gcode", gcode)
    clock.tick(5)
    driver.pause()
    assert driver.status().state is MachineState.PAUSED
    clock.tick(100)  # time passes while paused
    paused = driver.status()
    assert paused.state is MachineState.PAUSED and paused.progress == pytest.approx(25)
    with pytest.raises(DriverError):
        driver.pause()
    driver.resume()
    clock.tick(5)
    assert driver.status().progress == pytest.approx(50)
    driver.cancel()
    cancelled = driver.status()
    assert cancelled.state is MachineState.IDLE and cancelled.outcome is Outcome.CANCELLED
    assert cancelled.progress == pytest.approx(50)
    with pytest.raises(DriverError):
        driver.resume()


def test_fail_at_leaves_an_error_until_reset(gcode: Path, clock: FakeClock,
                                             device_id: str) -> None:
    driver = SimulatedPrinterDriver(device_id, duration_s=10, heat_s=0, fail_at=30, clock=clock)
    driver.start("fq-4.gcode", gcode)
    clock.tick(2)
    assert driver.status().state is MachineState.RUNNING
    clock.tick(2)
    failed = driver.status()
    assert failed.state is MachineState.ERROR and failed.outcome is Outcome.FAILED
    assert failed.progress == 30 and render(failed.message) == "simulated failure at 30 %"
    with pytest.raises(DriverError) as refused:
        driver.start("fq-5.gcode", gcode)
    assert refused.value.code == "error"
    driver.printer.reset()
    assert driver.status().state is MachineState.IDLE


def test_a_new_driver_reattaches_by_device_id(gcode: Path, clock: FakeClock,
                                              device_id: str) -> None:
    first = SimulatedPrinterDriver(device_id, duration_s=10, heat_s=0, clock=clock)
    first.start("fq-6.gcode", gcode)
    clock.tick(3)
    again = SimulatedPrinterDriver(device_id)  # a restarted worker in the same process
    found = again.find("fq-6.gcode")
    assert found is not None and found.state is MachineState.RUNNING
    assert found.progress == pytest.approx(30)
    assert again.find("fq-7.gcode") is None
    assert get_printer(device_id) is first.printer


def test_switched_off_reads_offline(gcode: Path, clock: FakeClock, device_id: str) -> None:
    driver = SimulatedPrinterDriver(device_id, clock=clock)
    driver.printer.set_online(False)
    assert driver.status().state is MachineState.OFFLINE
    with pytest.raises(DriverOffline):
        driver.connect()
    with pytest.raises(DriverOffline):
        driver.start("fq-8.gcode", gcode)
    driver.printer.set_online(True)
    driver.connect()


def test_real_time_and_many_threads(gcode: Path, device_id: str) -> None:
    driver = SimulatedPrinterDriver(device_id, duration_s=0.5, heat_s=0.1)
    driver.start("fq-9.gcode", gcode)
    errors: list[BaseException] = []

    def poll() -> None:
        try:
            while driver.status().outcome is None:
                time.sleep(0.01)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=poll) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert not errors
    assert driver.status().outcome is Outcome.DONE
