"""A laser on GRBL's factory ``$10=1`` (no ``Bf:`` in status reports) on a noisy USB link,
with the REAL GRBL 1.1h firmware: the driver sets ``$10`` bit 1 at connect, says so in its
events, and the 2,100-line job finishes ``done`` (issue 19: before, it ended ``failed``,
"stopped acknowledging lines while idle", because a lost ``ok`` could not be recovered)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import pytest

from fabqueue.core.reasons import decode, render
from fabqueue.drivers.base import DriverError, Outcome
from fabqueue.drivers.grbl import GrblDriver
from fabqueue.drivers.grbl.streaming import Line, Sent, Sync, Window
from tests.drivers.test_grbl_noisy_line import busy_program
from tests.grbl_fixtures import GrblFirmware, make_grbl_firmware, make_grbl_relay  # noqa: F401
from tests.grbl_relay import GrblRelay, Noise


def test_a_lost_reply_spares_the_lines_written_after_the_report_was_asked_for() -> None:
    """A report shows GRBL as it was when it read its ``?``: a line written after that is
    still on its way. Counting it as run freed its bytes twice, GRBL's buffer overflowed and
    two lines ran together (error:25 on the noisy line, once Bf: was on)."""
    window = Window()
    window.push(Sent(Line(1, "S100"), True))  # its ok will be lost on the line
    window.queried()  # ? #1
    window.push(Sent(Line(2, "S101"), True))  # written after ? #1
    window.queried()  # ? #2
    assert window.on_status("Idle", (15, 128)) is Sync.IN_STEP  # ? #1: a first look
    assert window.on_status("Idle", (15, 128)) is Sync.LOST_REPLY  # ? #2 agrees
    assert [s.line.number for s in window.clear_lost()] == [1]
    assert [s.line.number for s in window.sent] == [2]  # keeps its place: its ok comes
    assert window.answer() is not None and window.sent == deque()


def test_factory_settings_get_buffer_reports_and_say_so(
    make_grbl_firmware: Callable[..., GrblFirmware],  # noqa: F811
) -> None:
    firmware = make_grbl_firmware(s10=1)
    assert "$10=1" in firmware.query("$$")  # really the factory setting
    events: list[tuple[str, dict[str, object]]] = []
    driver = GrblDriver(firmware.device_path, on_event=lambda n, p: events.append((n, p)))
    driver.connect()
    try:
        assert driver.settings[10] == 3
        changed = [p for n, p in events if n == "laser:settings"]
        assert changed == [{"setting": "$10", "old": 1, "new": 3,
                            "reason": driver.connect_notes[0]}]
        found = decode(driver.connect_notes[0])
        assert found is not None and found.code == "grbl_status_mask_set"
        assert "$10=3" in render(driver.connect_notes[0])
        deadline = time.monotonic() + 10
        while "rx_bytes_free" not in driver.status().extra:  # Bf: now in the reports
            assert time.monotonic() < deadline, driver.status()
            time.sleep(0.1)
    finally:
        driver.close()
    assert "$10=3" in firmware.query("$$")  # kept in the controller's EEPROM
    again = GrblDriver(firmware.device_path)
    again.connect()
    try:
        assert again.connect_notes == []  # set once, not at every connect
    finally:
        again.close()


def test_a_set_status_mask_is_left_alone(
    make_grbl_firmware: Callable[..., GrblFirmware],  # noqa: F811
) -> None:
    firmware = make_grbl_firmware(s10=2)  # WPos with Bf: the lab's choice stays
    driver = GrblDriver(firmware.device_path)
    driver.connect()
    try:
        assert driver.connect_notes == [] and driver.settings[10] == 2
    finally:
        driver.close()


# A slow simulator on a loaded host: the job's own deadline (600 s) decides a hang.
@pytest.mark.timeout(900)
@pytest.mark.parametrize("seed", [1, 2])
def test_factory_settings_on_a_noisy_line_finish_the_job(
    seed: int, make_grbl_firmware: Callable[..., GrblFirmware],  # noqa: F811
    make_grbl_relay: Callable[..., GrblRelay],  # noqa: F811
) -> None:
    firmware = make_grbl_firmware(s10=1)
    relay = make_grbl_relay(firmware, Noise(seed, drop=0.001, duplicate=0.001, flip=0.001))
    driver = GrblDriver(relay.device_path)
    for _ in range(5):  # the handshake's own replies may be hit by the noise: try again
        try:
            driver.connect()
            break
        except DriverError:
            driver.close()
    else:
        pytest.fail("could not connect through the noisy line in 5 attempts")
    program = busy_program()
    try:
        assert driver.settings[10] == 3
        driver.start_lines(f"factory-{seed}", program)
        deadline = time.monotonic() + 600
        while driver.status().outcome is None:
            assert time.monotonic() < deadline, f"the job hangs: {driver.status()}"
            time.sleep(0.2)
        status = driver.status()
        assert status.outcome is Outcome.DONE, render(status.message)
        streamed = [x for x in relay.lines if x and x != "G4 P0"]
        assert streamed[-len(program):] == program  # every line, once, in order
        assert relay.corrupted > 0  # the noise really happened
    finally:
        driver.close()
