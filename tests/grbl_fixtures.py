"""Pytest fixtures that start the GRBL 1.1h emulator on a real pseudo-terminal.

Use from a test module or conftest::

    from tests.grbl_fixtures import grbl_emulator, make_grbl_emulator  # noqa: F401

``grbl_emulator`` yields ``(device_path, emulator)`` for a laser-mode controller running
at 1/100 of real time; ``make_grbl_emulator(**options)`` builds one with other options
(see ``GrblEmulator``), all closed at teardown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from fabqueue.simulators.grbl_emulator import GrblEmulator

FAST = 0.01  # simulated time per real second: a 60 s job runs in 0.6 s


@pytest.fixture
def make_grbl_emulator() -> Iterator[Callable[..., GrblEmulator]]:
    started: list[GrblEmulator] = []

    def make(**options: object) -> GrblEmulator:
        options.setdefault("time_scale", FAST)
        emulator = GrblEmulator(**options).start()  # type: ignore[arg-type]
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.close()


@pytest.fixture
def grbl_emulator(
    make_grbl_emulator: Callable[..., GrblEmulator],
) -> tuple[str, GrblEmulator]:
    emulator = make_grbl_emulator()
    return emulator.device_path, emulator
