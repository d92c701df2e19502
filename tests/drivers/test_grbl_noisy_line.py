"""A noisy line between the driver and the REAL GRBL 1.1h firmware.

The relay (tests/grbl_relay.py) drops, duplicates and flips a fraction of the bytes GRBL
sends and splits its lines at random, during a job of more than 2,000 lines. Whatever the
noise does, the reader thread stays alive, no exception reaches any log, and the job either
completes or stops with the beam off and is ``interrupted`` with a reason."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest

from fabqueue.core.reasons import decode, render
from fabqueue.drivers.base import DriverError, MachineState, Outcome
from fabqueue.drivers.grbl import GrblDriver
from tests.grbl_fixtures import GrblFirmware, make_grbl_firmware, make_grbl_relay  # noqa: F401
from tests.grbl_relay import GrblRelay, Noise


def busy_program(lines: int = 2100) -> list[str]:
    """Mostly power changes (answered at once) with a short move every tenth line: many
    replies for the noise to hit, little motion for a slow simulator to run."""
    program = ["G21 G90", "M4 S0", "G1 F6000"]
    for i in range(lines - 4):
        if i % 10 == 0:
            program.append(f"G1 X{(i // 10) % 7 * 0.2:.1f} Y{(i // 70) % 5 * 0.2:.1f}")
        else:
            program.append(f"S{100 + i % 800}")
    program.append("M5")
    return program


# The job's own deadline (600 s, failing with the driver's status) decides a hang; a slow
# simulator on a loaded host needs more than the suite's default 300 s to get there.
@pytest.mark.timeout(900)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_noisy_line_never_kills_the_reader_nor_leaves_the_beam_on(
    seed: int, make_grbl_firmware: Callable[..., GrblFirmware],  # noqa: F811
    make_grbl_relay: Callable[..., GrblRelay],  # noqa: F811
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    crashed: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: crashed.append(args.exc_value))
    caplog.set_level(logging.DEBUG)
    firmware = make_grbl_firmware()
    relay = make_grbl_relay(firmware, Noise(seed, drop=0.002, duplicate=0.002, flip=0.002))
    driver = GrblDriver(relay.device_path)
    connected = False
    for _ in range(5):  # the handshake's own replies may be hit by the noise: try again
        try:
            driver.connect()
            connected = True
            break
        except DriverError:  # e.g. `$32=1` garbled in the settings: refused, not crashed
            driver.close()
    assert connected, "could not connect through the noisy line in 5 attempts"
    program = busy_program()
    assert len(program) >= 2000
    try:
        driver.start_lines(f"noisy-{seed}", program)
        deadline = time.monotonic() + 600
        while driver.status().outcome is None:
            assert driver.reader_alive, "the reader thread died"
            assert time.monotonic() < deadline, f"the job hangs: {driver.status()}"
            time.sleep(0.2)
        status = driver.status()
        print(seed, status.outcome, render(status.message), status.extra,
              f"{time.monotonic() - deadline + 600:.0f} s")  # shown with -s / on failure
        assert driver.reader_alive
        assert status.outcome in (Outcome.DONE, Outcome.INTERRUPTED), render(status.message)
        if status.outcome is Outcome.DONE:
            assert relay.lines.count("M5") >= 1 and status.progress == 100
            streamed = [x for x in relay.lines if x and x != "G4 P0"]
            assert streamed[-len(program):] == program  # every line, once, in order
        else:  # stopped: beam off by feed hold + soft reset, a reason stored
            found = decode(status.message)
            assert found is not None and found.code.startswith("grbl_"), status.message
            assert 0x18 in relay.realtime_bytes()
        assert relay.corrupted > 0  # the noise really happened
        assert driver.noise_lines > 0
        assert driver.status().state is not MachineState.RUNNING
    finally:
        driver.close()
    assert not crashed, crashed
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]
    assert "Traceback" not in caplog.text
