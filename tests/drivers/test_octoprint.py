"""The OctoPrint driver against a real OctoPrint 1.11 with its Virtual Printer."""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trimesh

from fabqueue.drivers.base import (
    Driver,
    DriverError,
    DriverOffline,
    MachineState,
    MachineStatus,
    Outcome,
)
from fabqueue.drivers.octoprint import (
    OctoPrintDriver,
    file_name_for,
    job_id_from_name,
    state_from_text,
)
from fabqueue.slicing.profiles import default_profiles_folder, load_profiles
from fabqueue.slicing.prusaslicer import slice_model
from tests.octoprint_fixtures import (
    OctoPrintInstance,
    ensure_idle,
    octoprint_instance_module,
    start_instance,
)


def test_job_file_names_round_trip() -> None:
    assert file_name_for(12) == "fq-12.gcode"
    assert file_name_for(7, "My Benchy v2!") == "fq-7-My_Benchy_v2.gcode"
    assert job_id_from_name("fabqueue/fq-7-My_Benchy_v2.gcode") == 7
    assert job_id_from_name(file_name_for(12)) == 12
    assert job_id_from_name("benchy.gcode") is None
    assert job_id_from_name("fq-x.gcode") is None


def test_octoprint_states_map_to_machine_states() -> None:
    assert state_from_text("Printing") is MachineState.RUNNING
    assert state_from_text("Cancelling") is MachineState.RUNNING
    assert state_from_text("Pausing") is MachineState.PAUSED
    assert state_from_text("Paused") is MachineState.PAUSED
    assert state_from_text("Operational") is MachineState.IDLE
    assert state_from_text("Offline") is MachineState.OFFLINE
    assert state_from_text("Offline after error") is MachineState.ERROR


def test_unreachable_and_hung_octoprint_report_offline() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        closed_port = silent.getsockname()[1]
        hung = OctoPrintDriver(f"http://127.0.0.1:{closed_port}", "k" * 32,
                               timeout_s=0.5)
        started = time.monotonic()
        assert hung.status().state is MachineState.OFFLINE
        assert time.monotonic() - started < 10  # bounded by the driver's short timeout, not hung
        with pytest.raises(DriverOffline):
            hung.connect()
    gone = OctoPrintDriver(f"http://127.0.0.1:{closed_port}", "k" * 32, timeout_s=0.5)
    with pytest.raises(DriverOffline):
        gone.connect()
    assert gone.status().state is MachineState.OFFLINE


@pytest.fixture(scope="module")
def cube_gcode(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real sliced 20 mm cube: ~6 s on the sped-up Virtual Printer."""
    if shutil.which("prusa-slicer") is None:
        pytest.skip("PrusaSlicer not installed")
    folder = tmp_path_factory.mktemp("cube")
    trimesh.creation.box(extents=(20, 20, 20)).export(folder / "cube.stl")
    profiles = load_profiles(default_profiles_folder())
    files = profiles.profile_files("prusa_mk4", "PLA", "normal")
    return slice_model(folder / "cube.stl", folder / "cube.gcode", files).gcode


@pytest.fixture()
def driver(octoprint_instance: OctoPrintInstance) -> Iterator[OctoPrintDriver]:
    ensure_idle(octoprint_instance)
    printer = OctoPrintDriver(octoprint_instance.url, octoprint_instance.api_key)
    printer.connect()
    yield printer
    printer.close()
    ensure_idle(octoprint_instance)


def wait_for(
    driver: OctoPrintDriver, check: Callable[[MachineStatus], object], timeout_s: float = 20.0
) -> MachineStatus:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = driver.status()
        if check(status):
            return status
        time.sleep(0.2)
    raise AssertionError(f"condition not reached in {timeout_s} s; last status {status}")


@pytest.mark.octoprint
def test_print_runs_to_completion(driver: OctoPrintDriver, cube_gcode: Path) -> None:
    assert isinstance(driver, Driver)
    idle = driver.status()
    assert idle.state is MachineState.IDLE and idle.outcome is None
    assert set(idle.temperatures) >= {"tool0", "bed"}
    name = file_name_for(101, "cube")
    driver.start(name, cube_gcode)
    progress: list[float] = []
    final = wait_for(driver, lambda s: (s.progress is not None and s.outcome is None
                                        and progress.append(s.progress)) or s.outcome,
                     timeout_s=60)
    assert final.outcome is Outcome.DONE
    assert final.state is MachineState.IDLE and final.job_name == name
    rising = [p for p in progress if 0 < p < 100]
    assert len(rising) >= 2 and rising == sorted(rising) and rising[-1] > rising[0]
    success, print_time = driver.last_print(name)
    assert success is True and print_time is not None and print_time > 1
    assert driver.status().outcome is Outcome.DONE  # kept until the next start


@pytest.mark.octoprint
def test_busy_pause_find_resume_cancel(
    octoprint_instance: OctoPrintInstance, driver: OctoPrintDriver, cube_gcode: Path
) -> None:
    name = file_name_for(102)
    driver.start(name, cube_gcode)
    wait_for(driver, lambda s: s.state is MachineState.RUNNING and (s.progress or 0) > 3)
    with pytest.raises(DriverError) as busy:
        driver.start(file_name_for(103), cube_gcode)
    assert busy.value.code == "busy"

    driver.pause()
    paused = wait_for(driver, lambda s: s.extra["octoprint_state"] == "Paused", timeout_s=10)
    assert paused.state is MachineState.PAUSED

    # A restarted worker builds a fresh driver and finds its print by name.
    fresh = OctoPrintDriver(octoprint_instance.url, octoprint_instance.api_key)
    found = fresh.find(name)
    assert found is not None and found.state is MachineState.PAUSED and found.job_name == name
    assert fresh.find(file_name_for(999)) is None

    fresh.resume()
    wait_for(fresh, lambda s: s.state is MachineState.RUNNING)
    stopping = time.monotonic()
    fresh.cancel()
    stopped = wait_for(fresh, lambda s: s.state is MachineState.IDLE, timeout_s=30)
    assert time.monotonic() - stopping < 30  # a hang bound: a loaded host is slower
    assert wait_for(fresh, lambda s: s.outcome is not None, timeout_s=3).outcome is (
        Outcome.CANCELLED
    )
    assert stopped.progress != 100
    assert fresh.last_print(name)[0] is False


@pytest.mark.octoprint
def test_bad_api_key_is_forbidden_in_plain_words(
    octoprint_instance: OctoPrintInstance,
) -> None:
    wrong = OctoPrintDriver(octoprint_instance.url, "0" * 32)
    with pytest.raises(DriverError) as raised:
        wrong.connect()
    assert raised.value.code == "forbidden"
    assert "API key" in raised.value.reason
    status = wrong.status()  # never raises
    assert status.state is MachineState.OFFLINE and "API key" in (status.message or "")


@pytest.mark.octoprint
def test_octoprint_killed_mid_print_reads_offline(tmp_path: Path, cube_gcode: Path) -> None:
    instance = start_instance(tmp_path / "octoprint")
    try:
        printer = OctoPrintDriver(instance.url, instance.api_key, timeout_s=1.0)
        printer.connect()
        printer.start(file_name_for(104), cube_gcode)
        wait_for(printer, lambda s: s.state is MachineState.RUNNING)
        instance.kill()
        started = time.monotonic()
        status = printer.status()
        assert status.state is MachineState.OFFLINE
        assert time.monotonic() - started < 10  # bounded by the driver's short timeout, not hung
        assert status.outcome is None  # the worker decides what a lost link means
        instance.start()  # OctoPrint comes back (same port and basedir), the print is gone
        back = printer.status()
        assert back.state is MachineState.IDLE
        assert back.outcome is Outcome.INTERRUPTED and back.job_name == file_name_for(104)
    finally:
        instance.stop()


@pytest.mark.octoprint
def test_pair_are_separate_printers_and_connect_reconnects(
    octoprint_pair: tuple[OctoPrintInstance, OctoPrintInstance],
) -> None:
    first, second = octoprint_pair
    assert first.url != second.url and first.basedir != second.basedir
    request = octoprint_instance_module.request
    for instance in (first, second):
        request(f"{instance.url}/api/connection", instance.api_key, "POST",
                {"command": "disconnect"})
        printer = OctoPrintDriver(instance.url, instance.api_key)
        assert wait_for(printer, lambda s: s.state is not MachineState.IDLE, timeout_s=5).state \
            is MachineState.OFFLINE
        printer.connect()  # connects the printer again
        assert printer.status().state is MachineState.IDLE
        instance.send(octoprint_instance_module.SPEEDUP_COMMANDS)  # reset by the reconnect
