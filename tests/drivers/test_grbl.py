"""The GRBL driver against the GRBL 1.1h emulator on a real pty (pyserial, no mocks)."""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# tests/ is not a package on sys.path by default: make `tests.grbl_fixtures` importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from fabqueue.drivers.base import (
    Driver,
    DriverError,
    DriverOffline,
    MachineState,
    MachineStatus,
    Outcome,
)
from fabqueue.drivers.grbl import GrblDriver
from fabqueue.simulators.grbl_emulator import GrblEmulator
from tests.grbl_fixtures import make_grbl_emulator  # noqa: F401

Make = Callable[..., GrblEmulator]
Connect = Callable[..., tuple[GrblEmulator, GrblDriver]]


def drawing(shapes: int = 12, segments: int = 24) -> list[str]:
    """A laser drawing: circles (as polylines) and squares, travel between them, with
    comments and blank lines as a CAM program would have."""
    lines = ["; generated drawing", "G21 G90", "M4 S0", ""]
    for k in range(shapes):
        cx, cy = 30 + 25 * (k % 4), 30 + 25 * (k // 4)
        if k % 2:
            points = [
                (cx + 10 * math.cos(2 * math.pi * i / segments),
                 cy + 10 * math.sin(2 * math.pi * i / segments))
                for i in range(segments + 1)
            ]  # fmt: skip
        else:
            points = [(cx - 8, cy - 8), (cx + 8, cy - 8), (cx + 8, cy + 8), (cx - 8, cy + 8)]
            points.append(points[0])
        lines.append(f"(shape {k})")
        lines.append(f"G0 X{points[0][0]:.3f} Y{points[0][1]:.3f}")
        lines.append(f"G1 X{points[1][0]:.3f} Y{points[1][1]:.3f} F2400 S{300 + 40 * k}")
        lines += [f"G1 X{x:.3f} Y{y:.3f}" for x, y in points[2:]]
    lines += ["M5", "G0 X0 Y0"]
    return lines


def long_moves(count: int = 20) -> list[str]:
    moves = [f"G1 X{50 * (i % 2) + 10} Y{10 + i} F3000" for i in range(count)]
    return ["G21 G90", "M4 S800", *moves, "M5"]


def wait_outcome(driver: GrblDriver, timeout_s: float = 10.0) -> MachineStatus:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = driver.status()
        if status.outcome is not None:
            return status
        time.sleep(0.02)
    raise AssertionError(f"job did not end: {driver.status()}")


def wait_until(predicate: Callable[[], bool], timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"condition not reached in time: {predicate}"
        time.sleep(0.01)


@pytest.fixture
def connect(make_grbl_emulator: Make) -> Iterator[Connect]:  # noqa: F811
    drivers: list[GrblDriver] = []

    def make(driver_options: dict[str, object] | None = None, **emulator_options: object):
        emulator = make_grbl_emulator(**emulator_options)
        driver = GrblDriver(emulator.device_path, **(driver_options or {}))  # type: ignore[arg-type]
        drivers.append(driver)
        driver.connect()
        return emulator, driver

    yield make
    for driver in drivers:
        driver.close()


def test_implements_the_driver_protocol() -> None:
    assert isinstance(GrblDriver("/dev/null"), Driver)


def test_connect_reads_settings_and_unlocks(connect: Connect) -> None:
    emulator, driver = connect(homing=True)
    assert driver.settings[32] == 1 and driver.max_power_s == 1000
    assert driver.status().state is MachineState.IDLE
    assert emulator.lines_received[-1] == "$X"  # unlocked after the power-up alarm


def test_homing_on_connect(connect: Connect) -> None:
    emulator, _ = connect({"homing": True}, homing=True)
    assert "$H" in emulator.lines_received and emulator.state == "Idle"


def test_drawing_streams_to_the_end(connect: Connect, tmp_path: Path) -> None:
    emulator, driver = connect()
    program = tmp_path / "drawing.gcode"
    lines = drawing()
    program.write_text("\n".join(lines) + "\n")
    driver.start("drawing", program)
    status = wait_outcome(driver)
    assert status.outcome is Outcome.DONE and status.progress == 100
    assert status.state is MachineState.IDLE

    motion = [line for line in lines if line.startswith(("G0 X", "G1 X"))]
    segments = emulator.segments
    assert [s.source for s in segments] == motion  # every move, once, in program order
    assert all(s.completed for s in segments)
    for segment, line in zip(segments, motion, strict=True):
        words = dict((w[0], float(w[1:])) for w in line.split()[1:3])
        assert segment.end[:2] == pytest.approx((words["X"], words["Y"]), abs=1e-6)
    assert all(not s.laser_on for s in segments if s.rapid)  # off during every G0
    assert all(s.laser_on for s in segments if not s.rapid)
    program_lines = [x for x in emulator.lines_received if x != "G4 P0"]
    assert program_lines[-2:] == ["M5", "G0 X0 Y0"]
    assert emulator.machine.modal.spindle == "5"  # M5 ended the job
    # character counting: never more than 127 bytes unacknowledged, nothing lost
    assert emulator.machine.max_unanswered_bytes <= 127
    assert 100 < status.extra["max_unacked_bytes"] <= 127  # type: ignore[operator]
    assert emulator.machine.rx_dropped == 0


def test_stop_halts_within_half_a_second(connect: Connect) -> None:
    emulator, driver = connect(time_scale=0.2)
    driver.start_lines("long", long_moves())
    wait_until(lambda: emulator.state == "Run")
    time.sleep(0.3)
    pressed = time.monotonic()
    driver.cancel()
    resets = [t for t, b in emulator.machine.realtime_received if b == 0x18 and t >= pressed]
    assert resets and resets[0] - pressed < 0.5
    halted_at = emulator.position
    time.sleep(0.3)
    assert emulator.position == halted_at
    assert not emulator.segments[-1].completed  # the move was cut short
    status = driver.status()
    assert status.outcome is Outcome.CANCELLED and status.progress < 100
    assert status.state is MachineState.IDLE  # unlocked after ALARM:3
    assert "ALARM:3" in emulator.machine.responses


def test_hold_and_resume(connect: Connect) -> None:
    emulator, driver = connect(time_scale=0.05)
    driver.start_lines("long", long_moves())
    wait_until(lambda: emulator.state == "Run")
    driver.pause()
    wait_until(lambda: emulator.state == "Hold:0")
    wait_until(lambda: driver.status().extra["grbl_state"] == "Hold:0")
    assert driver.status().state is MachineState.PAUSED
    held_at = emulator.position
    time.sleep(0.3)
    assert emulator.position == held_at and driver.status().outcome is None
    driver.resume()
    status = wait_outcome(driver)
    assert status.outcome is Outcome.DONE
    assert len(emulator.segments) == 20 and all(s.completed for s in emulator.segments)


def test_error_mid_job_fails_naming_line_and_meaning(connect: Connect) -> None:
    emulator, driver = connect(time_scale=0.05)
    lines = ["; header", *long_moves(40)]
    emulator.inject_error(20, line_number=10)
    driver.start_lines("bad", lines)
    status = wait_outcome(driver)
    assert status.outcome is Outcome.FAILED
    tenth = [x for x in lines if not x.startswith(";")][9]
    number = lines.index(tenth) + 1
    assert f"line {number}" in status.message  # type: ignore[operator]
    assert tenth in status.message and "unsupported" in status.message  # type: ignore[operator]
    realtime = emulator.realtime_bytes()
    hold = realtime.index(ord("!"))
    assert 0x18 in realtime[hold:]  # feed hold, then reset
    assert len(emulator.segments) < 40
    wait_until(lambda: driver.status().state is MachineState.IDLE)


def test_alarm_mid_job_needs_a_reset(connect: Connect) -> None:
    emulator, driver = connect(time_scale=0.05)
    driver.start_lines("long", long_moves())
    wait_until(lambda: emulator.state == "Run")
    emulator.trigger_alarm(1)
    status = wait_outcome(driver)
    assert status.outcome is Outcome.FAILED
    assert "ALARM:1" in status.message and "hard limit" in status.message  # type: ignore[operator]
    assert status.state is MachineState.ERROR
    with pytest.raises(DriverError) as refused:
        driver.start_lines("next", ["G0 X1"])
    assert refused.value.code == "alarm"
    driver.reset()
    wait_until(lambda: driver.status().state is MachineState.IDLE)
    driver.start_lines("next", ["G0 X1"])
    assert wait_outcome(driver).outcome is Outcome.DONE


def test_port_vanishing_mid_job(connect: Connect) -> None:
    emulator, driver = connect(time_scale=0.05)
    driver.start_lines("long", long_moves())
    wait_until(lambda: emulator.state == "Run")
    emulator.vanish()
    status = wait_outcome(driver, timeout_s=2)
    assert status.outcome is Outcome.INTERRUPTED and status.state is MachineState.OFFLINE
    with pytest.raises(DriverOffline):
        driver.start_lines("again", ["G0 X1"])


def test_a_controller_not_in_laser_mode_is_refused(make_grbl_emulator: Make) -> None:  # noqa: F811
    emulator = make_grbl_emulator(laser_mode=False)
    driver = GrblDriver(emulator.device_path)
    with pytest.raises(DriverError) as refused:
        driver.connect()
    assert refused.value.code == "not_laser_mode" and "$32=1" in refused.value.reason
    assert not [x for x in emulator.lines_received if x.startswith("G")]


def test_char_counting_beats_send_and_wait_on_a_usb_link(connect: Connect) -> None:
    link = {"baud": 115200, "line_latency_s": 0.004, "time_scale": 0.001}
    lines = ["M4 S500"] + [
        f"G1 X{10 + i % 7 * 0.3:.3f} Y{10 + i * 0.1:.3f} F3000" for i in range(250)
    ]
    wall = {}
    for mode in ("char_count", "send_wait"):
        _, driver = connect({"streaming": mode}, **link)
        started = time.monotonic()
        driver.start_lines(mode, lines)
        assert wait_outcome(driver).outcome is Outcome.DONE
        wall[mode] = time.monotonic() - started
    assert wall["char_count"] < 0.5 * wall["send_wait"]


def test_settings_writes_wait_for_their_ok(connect: Connect) -> None:
    emulator, driver = connect()
    driver.start_lines("settings", ["G0 X1", "$110=5000", "$111=5000", "G0 X2"])
    assert wait_outcome(driver).outcome is Outcome.DONE
    assert emulator.settings[110] == 5000 and emulator.settings[111] == 5000
    received = emulator.lines_received
    assert received[received.index("$110=5000") - 1] == "G4 P0"  # waited for the motion
    assert received[-3:-1] == ["$111=5000", "G0 X2"]
    assert "error:8" not in emulator.machine.responses


def test_progress_time_left_events_and_find(make_grbl_emulator: Make) -> None:  # noqa: F811
    emulator = make_grbl_emulator(time_scale=0.1)
    events: list[tuple[str, dict[str, object]]] = []
    driver = GrblDriver(emulator.device_path, on_event=lambda n, p: events.append((n, p)))
    driver.connect()
    try:
        lines = long_moves(20)
        driver.start_lines("timed", lines, line_seconds=[1.0] * len(lines))
        wait_until(lambda: 30 < (driver.status().progress or 0) < 90)
        status = driver.status()
        assert status.time_left_s is not None and 0 < status.time_left_s < 3
        assert status.elapsed_s is not None and status.elapsed_s > 0
        assert status.extra["lines_total"] == len(lines)
        assert driver.find("timed") is not None and driver.find("other") is None
        wait_outcome(driver)
    finally:
        driver.close()
    names = {name for name, _ in events}
    assert names == {"laser:progress", "laser:state"}
    progress = [payload for name, payload in events if name == "laser:progress"]
    assert progress[-1]["progress"] == 100 and progress[-1]["outcome"] == "done"


def test_overlong_line_refused_before_sending(connect: Connect) -> None:
    emulator, driver = connect()
    before = len(emulator.lines_received)
    with pytest.raises(DriverError) as refused:
        driver.start_lines("long", ["G0 X1", "G1 X1 " + "Y1" * 40])
    assert refused.value.code == "line_too_long" and "Line 2" in refused.value.reason
    assert len(emulator.lines_received) == before


def test_frame_run_keeps_the_laser_off(connect: Connect) -> None:
    emulator, driver = connect()
    with pytest.raises(DriverError):
        driver.run_frame(["M3 S100", "G1 X10 F1000"])
    frame = ["G0 X10 Y10", "G1 X50 F3000", "G1 Y40", "G1 X10", "G1 Y10"]
    driver.run_frame(frame)
    assert wait_outcome(driver).outcome is Outcome.DONE
    assert len(emulator.segments) == 5 and not any(s.laser_on for s in emulator.segments)


def test_unreachable_ports_are_offline() -> None:
    with pytest.raises(DriverOffline):
        GrblDriver("/dev/does-not-exist").connect()
    master, slave = os.openpty()  # a port where nothing answers
    try:
        with pytest.raises(DriverOffline):
            GrblDriver(os.ttyname(slave), timeout_s=0.3).connect()
    finally:
        os.close(master)
        os.close(slave)


def test_slow_moves_and_long_holds_outlast_the_ack_timeout(connect: Connect) -> None:
    # each move takes 0.25 s and the hold 1 s, against a 0.4 s acknowledgement timeout:
    # GRBL keeps answering `?`, so the driver keeps waiting
    emulator, driver = connect({"timeout_s": 0.4}, time_scale=0.25)
    driver.start_lines("slow", long_moves(8))
    wait_until(lambda: emulator.state == "Run")
    driver.pause()
    time.sleep(1.0)
    assert driver.status().outcome is None
    driver.resume()
    assert wait_outcome(driver).outcome is Outcome.DONE


def test_status_polls_at_most_five_per_second(connect: Connect) -> None:
    emulator, driver = connect({"status_hz": 20})  # asks for more than GRBL should get
    before = emulator.realtime_bytes().count(ord("?"))
    time.sleep(1.0)
    polls = emulator.realtime_bytes().count(ord("?")) - before
    assert 3 <= polls <= 6
    assert driver.status().extra["position"] == [0.0, 0.0, 0.0]


def test_time_left_extrapolates_without_estimates(connect: Connect) -> None:
    _, driver = connect(time_scale=0.05)
    driver.start_lines("untimed", long_moves(20))
    wait_until(lambda: (driver.status().progress or 0) > 80)
    status = driver.status()
    assert status.time_left_s is not None and status.elapsed_s is not None
    assert 0 < status.time_left_s < status.elapsed_s  # most of it is done
    wait_outcome(driver)


def test_controller_restart_mid_job_stops_the_stream(connect: Connect) -> None:
    emulator, driver = connect(time_scale=0.05)
    driver.start_lines("long", long_moves(40))
    wait_until(lambda: emulator.state == "Run")
    emulator.reboot()  # nobody asked for it: a brown-out
    status = wait_outcome(driver)
    assert status.outcome is Outcome.FAILED and "restarted" in status.message  # type: ignore[operator]
    time.sleep(0.2)
    received = len(emulator.lines_received)
    time.sleep(0.3)
    assert len(emulator.lines_received) == received  # nothing streamed after the reboot


def test_a_planned_laser_job_streams_with_its_timings(connect: Connect) -> None:
    """The chain the device worker uses: fabqueue.laser's program, lines and timings."""
    import numpy as np

    from fabqueue.core.specs import LaserSpec
    from fabqueue.laser.gcode import generate_gcode
    from fabqueue.laser.materials import LaserMaterial, LaserOperation, Operation
    from fabqueue.laser.paths import Toolpath
    from fabqueue.laser.planning import plan_toolpaths

    laser = LaserSpec(
        id="diode", site="lab", bed_mm=(400.0, 300.0), max_power_s=1000.0,
        max_speed_mm_min=6000.0,
    )  # fmt: skip
    material = LaserMaterial(
        id="ply", name="Plywood", thickness_mm=3.0, sheet_mm=(600.0, 400.0),
        price_per_sheet=4.0, operations={Operation.CUT: LaserOperation(600, 90, passes=2)},
    )  # fmt: skip
    squares = [
        Toolpath(Operation.CUT, "#ff0000", np.array(
            [[x, 10], [x + 20, 10], [x + 20, 30], [x, 30]], dtype=float), True)
        for x in (10, 40, 70)
    ]  # fmt: skip
    program = generate_gcode(plan_toolpaths(squares), material, laser, origin=(5, 5))
    emulator, driver = connect()
    driver.start_lines("squares", program.lines, line_seconds=program.line_seconds)
    status = wait_outcome(driver)
    assert status.outcome is Outcome.DONE, status.message
    assert program.lines[-1] == "M5" and emulator.machine.modal.spindle == "5"
    cut = [s for s in emulator.segments if not s.rapid]
    assert cut and all(s.power == 900 for s in cut)  # 90 % of $30=1000
    assert not any(s.laser_on for s in emulator.segments if s.rapid)
