"""Pytest fixtures for lasers: the REAL GRBL 1.1h firmware, and the project's emulator.

``grbl_firmware`` starts GRBL 1.1h itself (compiled as a host program by grbl-sim, built by
``scripts/install_grbl_peer.sh`` into ``<repo>/.peers/grbl/``) on a socat pseudo-terminal in
a fresh folder (fresh EEPROM), sets it up as a lab sets up a laser (one ``$N=v`` at a time,
waiting for each ``ok``) and yields a :class:`GrblFirmware` whose ``device_path`` pyserial
opens like ``/dev/ttyUSB0``. ``make_grbl_firmware(**options)`` builds more, or other ones
(``laser_mode=False``, other settings).
A missing peer fails the test (in CI and locally), never skips.

The emulator fixtures (``grbl_emulator``, ``make_grbl_emulator``) stay for what the real
firmware can't be made to do (injected errors/alarms, a timing model of a USB link); each
test using them says why.

Use from a test module::

    from tests.grbl_fixtures import grbl_firmware, make_grbl_firmware  # noqa: F401
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import serial

from fabqueue.simulators.grbl_emulator import GrblEmulator
from tests.grbl_relay import GrblRelay, Noise

REPO = Path(__file__).resolve().parents[1]
FIRMWARE = Path(os.environ.get("FABQUEUE_GRBL_SIM", REPO / ".peers" / "grbl" / "grbl_sim.exe"))
FAST = 0.01  # emulator: simulated time per real second: a 60 s job runs in 0.6 s

# A laser's settings (GRBL's defaults are a mill's): laser mode, S 0..1000, fast axes.
LASER_SETTINGS: dict[int, float] = {
    32: 1, 30: 1000, 10: 3,  # $10=3: status reports carry Bf: (free blocks, free RX bytes)
    110: 6000, 111: 6000, 120: 1000, 121: 1000, 130: 400, 131: 300,
}


def firmware_path() -> Path:
    if not FIRMWARE.exists():
        message = (f"the GRBL firmware peer {FIRMWARE} is not built: run "
                   "scripts/install_grbl_peer.sh (needs ../shared/peers/grbl, gcc, make, socat)")
        pytest.fail(message)  # never a skip: the laser tests are worthless without it
    return FIRMWARE


class GrblFirmware:
    """One real GRBL 1.1h on a pty link at ``device_path`` (a symlink socat maintains)."""

    def __init__(self, workdir: Path, settings: dict[int, float] | None = None) -> None:
        self.workdir = workdir
        self.exe = firmware_path()
        self.device_path = str(workdir / "ttyGRBL")
        self.settings = dict(LASER_SETTINGS if settings is None else settings)
        self.process: subprocess.Popen[bytes] | None = None
        self.time_factor = 1.0

    # -- life cycle ------------------------------------------------------------------------
    def start(self, *, configure: bool = True) -> GrblFirmware:
        """Start the firmware (its EEPROM.DAT in ``workdir`` survives restarts)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.device_path)
        program = f"stdbuf -i0 -o0 {self.exe} -n -t {self.time_factor:g} -b /dev/null -s /dev/null"
        self.process = subprocess.Popen(
            ["socat", f"PTY,link={self.device_path},raw,echo=0",
             f"EXEC:'{program}',pty,raw,echo=0"],
            cwd=self.workdir, start_new_session=True,  # its own group: we stop just it
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.device_path):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("socat did not create the GRBL pty link")
            time.sleep(0.02)
        if configure:
            self.configure(self.settings)
        return self

    def stop(self) -> None:
        """Power cut: socat and the firmware end; the link path disappears."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)

    def restart(self) -> None:
        self.stop()
        self.start(configure=False)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- talking to it directly (setup and checks, not through the driver) ----------------
    def configure(self, settings: dict[int, float]) -> None:
        """Soft reset, wait for the banner, then each ``$N=v`` alone, waiting for its ok."""
        with serial.Serial(self.device_path, 115200, timeout=0.1) as port:
            self._banner(port)
            for key, value in settings.items():
                text = f"${key}={value:g}"
                answer = self._ask(port, text)
                assert answer == ["ok"], f"GRBL answered {text!r} with {answer}"

    def query(self, text: str) -> list[str]:
        """Send one line on a fresh connection (after the driver closed); its reply lines."""
        with serial.Serial(self.device_path, 115200, timeout=0.1) as port:
            self._banner(port)
            return self._ask(port, text)

    @staticmethod
    def _banner(port: serial.Serial) -> None:
        deadline = time.monotonic() + 10
        got = b""
        port.write(b"\x18")
        while b"Grbl 1.1" not in got or not got.rstrip(b"\r\n").endswith((b"]", b"help]")):
            assert time.monotonic() < deadline, f"no GRBL banner: {got[-200:]!r}"
            got += port.read(256)
        time.sleep(0.1)
        port.reset_input_buffer()

    @staticmethod
    def _ask(port: serial.Serial, text: str) -> list[str]:
        port.write(text.encode() + b"\n")
        lines: list[str] = []
        pending = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pending += port.read(256)
            *done, pending = pending.split(b"\n")
            lines += [x.decode(errors="replace").strip() for x in done if x.strip()]
            if lines and (lines[-1] == "ok" or lines[-1].startswith("error:")):
                return lines
        raise AssertionError(f"GRBL did not answer {text!r}: {lines}")


@pytest.fixture
def make_grbl_firmware(tmp_path: Path) -> Iterator[Callable[..., GrblFirmware]]:
    started: list[GrblFirmware] = []

    def make(*, laser_mode: bool = True, **settings: float) -> GrblFirmware:
        wanted = dict(LASER_SETTINGS)
        wanted.update({int(k.lstrip("s")): v for k, v in settings.items()})  # s30=255 → $30
        if not laser_mode:
            wanted[32] = 0
        firmware = GrblFirmware(tmp_path / f"grbl{len(started)}", wanted)
        started.append(firmware)
        return firmware.start()

    yield make
    for firmware in started:
        firmware.stop()


@pytest.fixture
def grbl_firmware(make_grbl_firmware: Callable[..., GrblFirmware]) -> GrblFirmware:
    return make_grbl_firmware()


# -- the project's emulator: only for faults and timing models the firmware can't give -------
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


@pytest.fixture
def make_grbl_relay() -> Iterator[Callable[..., GrblRelay]]:
    """A pty relay in front of a firmware: a spy on the line, or a noisy line (see
    ``tests/grbl_relay.py``)."""
    started: list[GrblRelay] = []

    def make(firmware: GrblFirmware, noise: Noise | None = None) -> GrblRelay:
        relay = GrblRelay(firmware.device_path, noise)
        started.append(relay)
        return relay

    yield make
    for relay in started:
        relay.close()
