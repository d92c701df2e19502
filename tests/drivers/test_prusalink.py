"""The PrusaLink driver against the real PrusaLink 0.8.1 (in front of our firmware responder)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fabqueue.core.reasons import render
from fabqueue.drivers.base import DriverError, MachineState, MachineStatus, Outcome
from fabqueue.drivers.prusalink import PrusaLinkDriver
from tests.conftest import status_until
from tests.prusalink_fixtures import PrusaLinkPeer, gcode_lines, prusalink  # noqa: F401

LONG = 80_000  # ~40 s of PrusaLink streaming (~2000 lines/s): time to pause, cancel, kill


@pytest.fixture
def driver(prusalink: PrusaLinkPeer) -> Iterator[PrusaLinkDriver]:  # noqa: F811
    d = PrusaLinkDriver(prusalink.url, prusalink.api_key)
    d.connect()
    yield d
    d.close()


def program(tmp_path: Path, lines: int) -> Path:
    path = tmp_path / f"job-{lines}.gcode"
    path.write_text(gcode_lines(lines))
    return path


def until(d: PrusaLinkDriver, check: Callable[[MachineStatus], object], what: str,
          timeout: float = 90) -> MachineStatus:
    return status_until(d, check, what, timeout=timeout, interval=0.2)


def test_prints_to_the_end_with_progress_and_temperatures(
        driver: PrusaLinkDriver, prusalink: PrusaLinkPeer, tmp_path: Path) -> None:  # noqa: F811
    assert driver.storage() == "local"  # PrusaLink's folder: the one writable storage it has
    driver.start("fq-1.gcode", program(tmp_path, 3000))
    seen = until(driver, lambda s: s.state is MachineState.RUNNING or s.outcome, "printing")
    assert seen.job_name == "fq-1.gcode"
    # the firmware responder's auto-report, through PrusaLink (which may pass it on a poll
    # after the start): its boot temperature, or the 0 a program's M104 S0 set
    warm = until(driver, lambda s: (s.temperatures.get("tool0") or {}).get("actual")
                 is not None, "the temperatures")
    assert set(warm.temperatures) == {"tool0", "bed"}
    assert warm.temperatures["tool0"]["actual"] in (25.0, 0.0)
    done = until(driver, lambda s: s.outcome is not None, "the print to end")
    assert done.outcome is Outcome.DONE and done.progress == 100.0
    assert driver.status().outcome is Outcome.DONE  # kept until the next start
    assert (prusalink.gcodes / "fq-1.gcode").exists()


def test_a_start_while_finished_lingers_waits_and_starts_once(
        driver: PrusaLinkDriver, prusalink: PrusaLinkPeer, tmp_path: Path) -> None:  # noqa: F811
    driver.start("fq-a.gcode", program(tmp_path, 500))
    until(driver, lambda s: s.outcome is not None, "the first print to end")
    assert prusalink.state() == "FINISHED"  # lingers ≥ 11 s; a start now gets 409
    driver.start("fq-b.gcode", program(tmp_path, LONG))
    running = until(driver, lambda s: s.state is MachineState.RUNNING, "the second printing")
    assert running.job_name == "fq-b.gcode" and running.outcome is None
    assert running.progress is None or running.progress < 100  # never the previous 100 %
    driver.cancel()


def test_pause_resume_and_cancel_mid_print(
        driver: PrusaLinkDriver, prusalink: PrusaLinkPeer, tmp_path: Path) -> None:  # noqa: F811
    driver.start("fq-2.gcode", program(tmp_path, LONG))
    until(driver, lambda s: s.state is MachineState.RUNNING and (s.progress or 0) > 0,
          "printing with progress")
    with pytest.raises(DriverError) as busy:
        driver.start("fq-3.gcode", program(tmp_path, 10))
    assert busy.value.code == "busy"
    driver.pause()
    paused = until(driver, lambda s: s.state is MachineState.PAUSED, "paused")
    assert paused.outcome is None
    driver.resume()
    until(driver, lambda s: s.state is MachineState.RUNNING, "printing again")
    driver.cancel()
    st = driver.status()
    assert st.outcome is Outcome.CANCELLED and st.state is MachineState.IDLE
    assert prusalink.state() == "STOPPED"
    assert not (prusalink.gcodes / "fq-3.gcode").exists() or prusalink.state() != "PRINTING"


def test_find_reattaches_and_never_starts_twice(
        driver: PrusaLinkDriver, prusalink: PrusaLinkPeer, tmp_path: Path) -> None:  # noqa: F811
    driver.start("fq-4.gcode", program(tmp_path, LONG))
    until(driver, lambda s: s.state is MachineState.RUNNING, "printing")
    driver.pause()
    until(driver, lambda s: s.state is MachineState.PAUSED, "paused")
    fresh = PrusaLinkDriver(prusalink.url, prusalink.api_key)  # a restarted worker
    assert fresh.find("fq-5.gcode") is None
    found = fresh.find("fq-4.gcode")
    assert found is not None and found.state is MachineState.PAUSED
    assert found.job_name == "fq-4.gcode" and found.outcome is None
    job_id = (prusalink.job() or {})["id"]
    with pytest.raises(DriverError) as again:  # the same job sent again while it is loaded
        fresh.start("fq-4.gcode", program(tmp_path, 10))
    said = render(again.value.reason)
    assert again.value.code == "busy" and "loaded already" in said, said
    fresh.resume()
    until(fresh, lambda s: s.state is MachineState.RUNNING, "printing again")
    assert (prusalink.job() or {})["id"] == job_id  # the same job, started once
    fresh.cancel()


def test_killed_prusalink_is_offline_then_interrupted(
        driver: PrusaLinkDriver, prusalink: PrusaLinkPeer, tmp_path: Path) -> None:  # noqa: F811
    driver.start("fq-8.gcode", program(tmp_path, LONG))
    until(driver, lambda s: s.state is MachineState.RUNNING, "printing")
    prusalink.kill_link()
    st = driver.status()
    assert st.state is MachineState.OFFLINE and "did not answer" in render(st.message)
    prusalink.start_link()
    prusalink.wait_ready()
    back = until(driver, lambda s: s.state is not MachineState.OFFLINE, "PrusaLink back")
    assert back.outcome is Outcome.INTERRUPTED  # it forgot the serial print: lost
    again = PrusaLinkDriver(prusalink.url, prusalink.api_key).find("fq-8.gcode")
    assert again is not None and again.outcome is Outcome.INTERRUPTED  # never sent again
    assert prusalink.state() in ("IDLE", "READY")  # nothing started by itself


def test_digest_auth_works_and_a_wrong_key_is_refused_in_plain_words(
        prusalink: PrusaLinkPeer) -> None:  # noqa: F811
    d = PrusaLinkDriver(prusalink.url, password=prusalink.password)
    d.connect()
    assert d.status().state is MachineState.IDLE
    with pytest.raises(DriverError) as err:
        PrusaLinkDriver(prusalink.url, "not-the-key").connect()
    assert err.value.code == "forbidden"
    assert render(err.value.reason) == ("PrusaLink refused the API key: check the key set for "
                                        "this printer (403)")  # PrusaLink: 403 for a wrong key
    with pytest.raises(DriverError) as bad:
        PrusaLinkDriver(prusalink.url, password="wrong-password").connect()
    assert bad.value.code == "forbidden"
