"""The GRBL 1.1h emulator, driven byte by byte over its real pty with pyserial."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import serial

# tests/ is not a package on sys.path by default: make `tests.grbl_fixtures` importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from fabqueue.simulators.grbl_emulator import GrblEmulator
from tests.grbl_fixtures import grbl_emulator, make_grbl_emulator  # noqa: F401

BANNER = "Grbl 1.1h ['$' for help]"
Make = Callable[..., GrblEmulator]


class Client:
    """A bare serial client: what a sender sees on the wire."""

    def __init__(self, path: str) -> None:
        self.port = serial.Serial(path, 115200, timeout=0.01)
        self._pending = b""
        self._lines: list[str] = []

    def send(self, data: bytes | str) -> None:
        self.port.write(data.encode() if isinstance(data, str) else data)

    def _receive(self) -> None:
        self._pending += self.port.read(256)
        *complete, self._pending = self._pending.split(b"\n")
        self._lines += [t for t in (raw.decode().strip() for raw in complete) if t]

    def lines(self, until: Callable[[str], bool], timeout_s: float = 2.0) -> list[str]:
        """Lines received until one satisfies ``until`` (included); fails on timeout."""
        got: list[str] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._receive()
            while self._lines:
                got.append(self._lines.pop(0))
                if until(got[-1]):
                    return got
        raise AssertionError(f"timed out; received {got!r}")

    def quiet(self, seconds: float) -> list[str]:
        """Everything that arrives within ``seconds`` (expecting nothing, usually)."""
        time.sleep(seconds)
        self._receive()
        got, self._lines = self._lines, []
        return got

    def ask(self, line: str) -> list[str]:
        self.send(line + "\n")
        return self.lines(lambda t: t == "ok" or t.startswith("error:"))

    def status(self) -> str:
        self.send(b"?")
        return self.lines(lambda t: t.startswith("<"))[-1]

    def reset(self) -> list[str]:
        self.send(b"\x18")
        got = self.lines(lambda t: t == BANNER)
        # the power-up banner may have come first: let the reset's own banner arrive too
        got += self.quiet(0.08)
        return got


@pytest.fixture
def client(grbl_emulator: tuple[str, GrblEmulator]) -> Iterator[Client]:  # noqa: F811
    c = Client(grbl_emulator[0])
    c.reset()
    yield c
    c.port.close()


def connect(emulator: GrblEmulator) -> Client:
    c = Client(emulator.device_path)
    c.reset()
    return c


def test_identifies_itself_and_lists_34_settings(client: Client) -> None:
    assert client.ask("$I") == ["[VER:1.1h.20190830:]", "[OPT:V,15,128]", "ok"]
    settings = client.ask("$$")
    assert settings[-1] == "ok" and len(settings) == 35
    assert "$32=1" in settings and "$30=1000" in settings and "$130=400.000" in settings


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("G99", 20), ("foo", 2), ("G1 X10", 22), ("G0 G1 X1", 24), ("G90 G91", 21),
        ("G4", 28), ("$999=1", 3), ("$100=-1", 4), ("G1 X1 X2 F100", 25),
        ("G2 X10 F100", 35), ("M7", 20), ("$20=1", 10), ("X" * 81, 11), ("1G0", 1),
        ("$H", 5),
    ],
)  # fmt: skip
def test_answers_parser_errors_like_the_firmware(client: Client, line: str, code: int) -> None:
    assert client.ask(line) == [f"error:{code}"]
    assert client.ask("G0 X1") == ["ok"]  # and carries on


def test_every_line_is_answered_in_order(client: Client) -> None:
    client.send("G0 X1\nG99\nG0 X2\nfoo\n\n")
    answers = client.lines(lambda t: t == "error:2")
    assert answers == ["ok", "error:20", "ok", "error:2"]
    assert client.lines(lambda t: True) == ["ok"]  # the empty line


def test_a_full_buffer_drops_bytes(make_grbl_emulator: Make) -> None:  # noqa: F811
    emulator = make_grbl_emulator(time_scale=1.0, status_mask=3)
    c = connect(emulator)
    # 15 long moves fill the planner; the 16th line waits, so the receive buffer fills up
    c.send("".join(f"G1 X{10 + i} F60\n" for i in range(16)))
    time.sleep(0.3)
    overrun = "".join(f"G1 Y{i + 1}.5 F60\n" for i in range(20))  # 240 bytes
    c.send(overrun)
    time.sleep(0.3)
    assert emulator.machine.max_rx_fill == 128
    assert emulator.machine.rx_dropped == len(overrun) - 128
    assert "|Bf:0,0|" in c.status()  # no planner block, no receive byte free


def test_status_hold_and_resume_act_at_once(make_grbl_emulator: Make) -> None:  # noqa: F811
    emulator = make_grbl_emulator(time_scale=1.0)
    c = connect(emulator)
    assert c.ask("G1 X100 F600") == ["ok"]
    assert c.status().startswith("<Run|")
    c.send(b"!")
    assert c.status().startswith("<Hold:1|")
    time.sleep(0.06)
    held = c.status()
    assert held.startswith("<Hold:0|")
    c.send("G0 Y5\n")
    assert c.quiet(0.2) == []  # held: the line waits, no ok
    assert c.status() == held  # and nothing moved
    c.send(b"~")
    assert c.lines(lambda t: t == "ok") == ["ok"]
    assert c.status().startswith("<Run|")


def test_reset_during_motion_alarms_and_locks(make_grbl_emulator: Make) -> None:  # noqa: F811
    emulator = make_grbl_emulator(time_scale=1.0)
    c = connect(emulator)
    c.ask("G1 X100 F600")
    c.send(b"\x18")
    assert c.lines(lambda t: t.startswith("[MSG")) == [
        "ALARM:3", BANNER, "[MSG:'$H'|'$X' to unlock]",
    ]  # fmt: skip
    assert not emulator.segments[-1].completed
    assert c.status().startswith("<Alarm|")
    assert c.ask("G0 X1") == ["error:9"]
    assert c.ask("$J=G91 X1 F100") == ["error:8"]
    assert c.ask("$X") == ["[MSG:Caution: Unlocked]", "ok"]
    assert c.ask("G0 X1") == ["ok"]


def test_bytes_sent_before_the_banner_are_lost(client: Client) -> None:
    client.send(b"\x18G0 X5\n")
    assert client.lines(lambda t: t == BANNER) == [BANNER]
    assert client.quiet(0.1) == []  # the line never got an answer


def test_soft_limit_alarm_silences_status_until_reset(make_grbl_emulator: Make) -> None:  # noqa: F811
    emulator = make_grbl_emulator(homing=True, soft_limits=True, travel_mm=(100, 100, 10))
    c = connect(emulator)
    assert c.ask("G0 X1") == ["error:9"]  # homing enabled: locked at power-up
    assert c.ask("$H") == ["ok"]
    assert c.status().startswith("<Idle|MPos:0.000,0.000,0.000")
    assert c.ask("$J=G91 X150 F1000") == ["error:15"]  # a jog beyond travel is just refused
    c.send("G0 X150\n")
    assert c.lines(lambda t: t.startswith("[MSG")) == ["ALARM:2", "[MSG:Reset to continue]"]
    c.send(b"?")
    assert c.quiet(0.2) == []
    assert c.reset()[-2:] == [BANNER, "[MSG:'$H'|'$X' to unlock]"]
    assert c.status().startswith("<Alarm|")


def test_check_mode_parses_without_moving(client: Client, grbl_emulator) -> None:  # noqa: F811
    emulator = grbl_emulator[1]
    assert client.ask("$C") == ["[MSG:Enabled]", "ok"]
    assert client.ask("G1 X10 F100") == ["ok"]
    assert client.ask("G99") == ["error:20"]
    assert client.status().startswith("<Check|MPos:0.000,0.000,0.000")
    client.send("$C\n")
    assert client.lines(lambda t: t == BANNER) == ["[MSG:Disabled]", "ok", BANNER]
    assert emulator.segments == []


def test_settings_write_and_eeprom_stall(client: Client, grbl_emulator) -> None:  # noqa: F811
    emulator = grbl_emulator[1]
    assert client.ask("$32=0") == ["ok"]
    assert "$32=0" in client.ask("$$")
    # a stall wide enough that a loaded host still sends inside it (the default is 20 ms)
    emulator.eeprom_stall_s = 1.0
    client.send("$30=500\n")
    deadline = time.monotonic() + 30
    while emulator.settings[30] != 500:  # set as the write begins, with the deaf window
        assert time.monotonic() < deadline, "the setting was never written"
        time.sleep(0.001)
    client.send("G0 X1\n")  # arrives while the EEPROM is written: lost
    assert client.lines(lambda t: t == "ok", timeout_s=30) == ["ok"]
    assert client.quiet(0.1) == []
    assert emulator.settings[30] == 500


def test_laser_power_per_move(client: Client, grbl_emulator) -> None:  # noqa: F811
    emulator = grbl_emulator[1]
    for line in ["M4 S500", "G0 X10", "G1 X20 F3000", "S2000 G1 X30", "M5", "G1 X40"]:
        assert client.ask(line) == ["ok"]
    client.ask("G4 P0")
    powers = [(s.source, s.rapid, s.power) for s in emulator.segments]
    assert powers == [
        ("G0 X10", True, 0.0),  # G0 is laser-off in laser mode
        ("G1 X20 F3000", False, 500.0),
        ("S2000 G1 X30", False, 1000.0),  # clamped to $30
        ("G1 X40", False, 0.0),  # after M5
    ]


def test_arc_chords_follow_the_circle(client: Client, grbl_emulator) -> None:  # noqa: F811
    emulator = grbl_emulator[1]
    client.ask("G0 X10 Y10")
    assert client.ask("G2 X20 Y10 I5 J0 F600") == ["ok"]
    client.ask("G4 P0")
    chords = [s for s in emulator.segments if s.source.startswith("G2")]
    assert len(chords) > 20
    assert chords[-1].end == (20.0, 10.0, 0.0)
    assert all(abs(math.dist(s.end[:2], (15, 10)) - 5) < 1e-6 for s in chords)
    assert max(s.end[1] for s in chords) == pytest.approx(15, abs=0.01)  # clockwise: over the top
    assert client.ask("G3 X30 Y10 R5") == ["ok"]  # radius form, counter-clockwise: below
    client.ask("G4 P0")
    below = [s for s in emulator.segments if s.source.startswith("G3")]
    assert below[-1].end == (30.0, 10.0, 0.0)
    assert min(s.end[1] for s in below) == pytest.approx(5, abs=0.01)


def test_jog_cancel_and_feed_override(make_grbl_emulator: Make) -> None:  # noqa: F811
    emulator = make_grbl_emulator(time_scale=1.0)
    c = connect(emulator)
    assert c.ask("$J=G91 X100 F600") == ["ok"]
    assert c.status().startswith("<Jog|")
    c.send(b"\x85")
    assert c.status().startswith("<Idle|")
    c.send(b"\x91\x91")
    assert "|Ov:120,100,100" in c.status()


def test_injected_error_and_alarm(client: Client, grbl_emulator) -> None:  # noqa: F811
    emulator = grbl_emulator[1]
    emulator.inject_error(33, line_number=2)
    assert [client.ask(f"G0 X{i}")[0] for i in range(1, 4)] == ["ok", "error:33", "ok"]
    emulator.trigger_alarm(1)
    assert client.lines(lambda t: t.startswith("[MSG")) == ["ALARM:1", "[MSG:Reset to continue]"]


def test_baud_pacing_and_latency(make_grbl_emulator: Make) -> None:  # noqa: F811
    emulator = make_grbl_emulator(baud=9600, line_latency_s=0.05)
    c = connect(emulator)
    started = time.monotonic()
    answer = c.ask("$$")  # ~450 bytes at 960 bytes/s
    took = time.monotonic() - started
    assert len(answer) == 35
    assert took > 0.4  # paced by the baud rate (no upper bound: a loaded host is slower)
    started = time.monotonic()
    c.ask("G0 X1")
    assert time.monotonic() - started >= 0.05


def test_vanishing_port_fails_reads(grbl_emulator) -> None:  # noqa: F811
    path, emulator = grbl_emulator
    c = Client(path)
    emulator.vanish()
    with pytest.raises((serial.SerialException, OSError)):
        for _ in range(50):
            c.port.read(10)


def test_runs_standalone_behind_a_symlink(tmp_path: Path) -> None:
    link = tmp_path / "laser"
    command = [sys.executable, "-m", "fabqueue.simulators.grbl_emulator", "--link", str(link)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert "GRBL 1.1h emulator on /dev/" in process.stdout.readline()
        c = Client(str(link))
        c.reset()
        assert c.ask("$I")[-1] == "ok"
        c.port.close()
    finally:
        process.terminate()
        process.wait(timeout=5)
    assert not link.is_symlink()  # cleaned up on SIGTERM
