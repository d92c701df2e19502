"""The Bambu driver against a simulated printer on a real mosquitto (TLS) and a real
implicit-FTPS server (tests/bambu_fixtures.py): no real Bambu printer can run here."""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fabqueue.core.reasons import decode, render
from fabqueue.drivers.bambu import BambuDriver
from fabqueue.drivers.base import DriverError, MachineState, MachineStatus, Outcome
from tests.bambu_fixtures import BambuPeer, bambu, gcode_lines  # noqa: F401
from tests.conftest import status_until, wait_for

LONG = 200_000  # ~50 s at the simulator's 4000 lines/s: time to pause and cancel


def new_driver(peer: BambuPeer, code: str | None = None) -> BambuDriver:
    return BambuDriver("127.0.0.1", peer.serial, code or peer.access_code,
                       mqtt_port=peer.mqtt_port, ftps_port=peer.ftps_port)


@pytest.fixture
def driver(bambu: BambuPeer) -> Iterator[BambuDriver]:  # noqa: F811
    d = new_driver(bambu)
    d.connect()
    yield d
    d.close()


def program(tmp_path: Path, lines: int, **kw: int) -> Path:
    path = tmp_path / "job.gcode"
    path.write_text(gcode_lines(lines, **kw))
    return path


def until(d: BambuDriver, check: Callable[[MachineStatus], object], what: str,
          timeout: float = 60) -> MachineStatus:
    return status_until(d, check, what, timeout=timeout, interval=0.1)


def test_prints_to_the_end_with_progress_and_temperatures(
        driver: BambuDriver, bambu: BambuPeer, tmp_path: Path) -> None:  # noqa: F811
    driver.start("fq-1.gcode", program(tmp_path, 20_000))
    assert (bambu.sd / "fq-1.gcode").read_text() == program(tmp_path, 20_000).read_text()
    seen = until(driver, lambda s: s.state is MachineState.RUNNING and (s.progress or 0) > 0,
                 "printing")
    assert seen.job_name == "fq-1.gcode" and 0 < (seen.progress or 0) < 100
    assert seen.temperatures["tool0"] == {"actual": 215.0, "target": 215.0}
    assert seen.temperatures["bed"]["target"] == 60.0
    assert seen.time_left_s is not None and seen.time_left_s % 60 == 0  # minutes, in seconds
    done = until(driver, lambda s: s.outcome is not None, "the print to end")
    assert done.outcome is Outcome.DONE and done.progress == 100.0
    assert driver.status().outcome is Outcome.DONE  # kept until the next start
    assert bambu.starts("fq-1.gcode") == 1


def test_a_3mf_project_is_started_with_project_file(
        driver: BambuDriver, bambu: BambuPeer, tmp_path: Path) -> None:  # noqa: F811
    project = tmp_path / "job.3mf"
    with zipfile.ZipFile(project, "w") as archive:
        archive.writestr("Metadata/plate_1.gcode", gcode_lines(2_000))
    driver.start("fq-3mf", project)
    done = until(driver, lambda s: s.outcome is not None, "the project to end")
    assert done.outcome is Outcome.DONE and done.job_name == "fq-3mf.3mf"
    sent = [c["print"] for c in bambu.printer.commands if "print" in c]
    assert sent[0]["command"] == "project_file" and sent[0]["url"] == "ftp:///fq-3mf.3mf"


def test_pause_resume_and_cancel_mid_print(
        driver: BambuDriver, bambu: BambuPeer, tmp_path: Path) -> None:  # noqa: F811
    driver.start("fq-2.gcode", program(tmp_path, LONG))
    until(driver, lambda s: s.state is MachineState.RUNNING and (s.progress or 0) > 0,
          "printing")
    with pytest.raises(DriverError) as busy:
        driver.start("fq-3.gcode", program(tmp_path, 10))
    assert busy.value.code == "busy" and not (bambu.sd / "fq-3.gcode").exists()
    driver.pause()
    paused = until(driver, lambda s: s.state is MachineState.PAUSED, "paused")
    assert paused.outcome is None
    driver.resume()
    until(driver, lambda s: s.state is MachineState.RUNNING, "printing again")
    driver.cancel()
    st = until(driver, lambda s: s.outcome is not None, "the stop")
    assert st.outcome is Outcome.CANCELLED and st.state is MachineState.IDLE
    assert bambu.state()["gcode_state"] == "FAILED"


def test_find_reattaches_and_never_starts_twice(
        driver: BambuDriver, bambu: BambuPeer, tmp_path: Path) -> None:  # noqa: F811
    driver.start("fq-4.gcode", program(tmp_path, 20_000, pause_at=10_000))
    until(driver, lambda s: s.state is MachineState.PAUSED, "held by its M400 U1 line")
    fresh = new_driver(bambu)  # a restarted worker
    fresh.connect()
    try:
        assert fresh.find("fq-5.gcode") is None
        found = fresh.find("fq-4.gcode")
        assert found is not None and found.state is MachineState.PAUSED
        assert found.job_name == "fq-4.gcode" and found.outcome is None
        with pytest.raises(DriverError) as again:
            fresh.start("fq-4.gcode", program(tmp_path, 10))
        assert again.value.code == "busy" and "loaded already (PAUSE)" in render(
            again.value.reason)
        fresh.resume()
        done = until(fresh, lambda s: s.outcome is not None, "the print to end")
        assert done.outcome is Outcome.DONE
    finally:
        fresh.close()
    after = new_driver(bambu)  # the print ended while no worker watched: still recognised
    after.connect()
    try:
        st = after.find("fq-4.gcode")
        assert st is not None and st.outcome is Outcome.DONE
    finally:
        after.close()
    assert bambu.starts("fq-4.gcode") == 1


def test_a_staged_program_starts_without_a_second_upload(
        driver: BambuDriver, bambu: BambuPeer, tmp_path: Path) -> None:  # noqa: F811
    job = program(tmp_path, 2_000)
    driver.stage("fq-20.gcode", job)
    assert (bambu.sd / "fq-20.gcode").read_bytes() == job.read_bytes()
    # the FTP server records a file just after its 226 reply: wait for the record
    wait_for(lambda: bambu.uploads == ["fq-20.gcode"], timeout=10, what="the upload record")
    assert bambu.starts("fq-20.gcode") == 0
    assert driver.status().state is MachineState.IDLE  # staging never moves the printer
    driver.start("fq-20.gcode", job)
    until(driver, lambda s: s.outcome is not None, "the print to end")
    assert bambu.uploads == ["fq-20.gcode"] and bambu.starts("fq-20.gcode") == 1
    other = tmp_path / "other.gcode"  # a different program than the one staged: sent again
    other.write_text(gcode_lines(1_000))
    driver.stage("fq-21.gcode", job)
    driver.start("fq-21.gcode", other)
    wait_for(lambda: bambu.uploads == ["fq-20.gcode", "fq-21.gcode", "fq-21.gcode"],
             timeout=10, what="the second upload of a changed program")
    assert (bambu.sd / "fq-21.gcode").read_bytes() == other.read_bytes()


def test_staging_never_overwrites_the_file_being_printed(
        driver: BambuDriver, bambu: BambuPeer, tmp_path: Path) -> None:  # noqa: F811
    job = program(tmp_path, 20_000, pause_at=10_000)
    printing = job.read_bytes()
    driver.start("fq-22.gcode", job)
    until(driver, lambda s: s.state is MachineState.PAUSED, "held by its M400 U1 line")
    small = tmp_path / "small.gcode"
    small.write_text(gcode_lines(10))
    for name, words in (("fq-22.gcode", "loaded already"), ("fq-23.gcode", "already printing")):
        with pytest.raises(DriverError) as busy:
            driver.stage(name, small)
        assert busy.value.code == "busy" and words in render(busy.value.reason)
    assert bambu.uploads == ["fq-22.gcode"]
    assert (bambu.sd / "fq-22.gcode").read_bytes() == printing
    driver.cancel()


def test_incremental_reports_are_merged(
        driver: BambuDriver, bambu: BambuPeer, tmp_path: Path) -> None:  # noqa: F811
    driver.start("fq-6.gcode", program(tmp_path, LONG))
    until(driver, lambda s: (s.progress or 0) > 1, "progress")
    # P1-style reports carry only what changed: the job name came once, and stays known
    st = driver.status()
    assert st.job_name == "fq-6.gcode" and st.temperatures["bed"]["target"] == 60.0
    driver.cancel()


def test_hms_errors_are_shown_in_words_or_as_the_code(
        driver: BambuDriver, bambu: BambuPeer, tmp_path: Path) -> None:  # noqa: F811
    driver.start("fq-7.gcode", program(tmp_path, LONG))
    until(driver, lambda s: s.state is MachineState.RUNNING, "printing")
    bambu.printer.fault(0x03000400, 0x00020001)
    st = until(driver, lambda s: s.state is MachineState.PAUSED, "paused by the HMS error")
    assert render(st.message) == ("printer health message 0300_0400_0002_0001: the part "
                                  "cooling fan is too slow or stopped")
    bambu.printer.fault(0x0C000300, 0x00030008, fail=True)
    st = until(driver, lambda s: s.outcome is not None, "the failure")
    assert st.outcome is Outcome.FAILED
    assert render(st.message) == "printer health message 0C00_0300_0003_0008"


def test_printer_switched_off_mid_print_is_offline_then_interrupted(
        driver: BambuDriver, bambu: BambuPeer, tmp_path: Path) -> None:  # noqa: F811
    driver.start("fq-8.gcode", program(tmp_path, 20_000, pause_at=10_000))
    until(driver, lambda s: s.state is MachineState.PAUSED, "held mid-print")
    bambu.power_off()
    st = until(driver, lambda s: s.state is MachineState.OFFLINE, "the printer gone")
    assert decode(st.message) is not None and "did not answer" in render(st.message)
    with pytest.raises(DriverError) as err:
        new_driver(bambu).connect()
    assert err.value.code == "offline"
    bambu.power_on()
    st = until(driver, lambda s: s.state is not MachineState.OFFLINE, "back again", timeout=30)
    assert st.outcome is Outcome.INTERRUPTED and st.state is MachineState.IDLE
    assert bambu.state()["gcode_state"] == "IDLE"  # nothing started by itself
    assert bambu.starts("fq-8.gcode") == 1


def test_a_wrong_access_code_is_refused_in_plain_words(bambu: BambuPeer) -> None:  # noqa: F811
    with pytest.raises(DriverError) as err:
        new_driver(bambu, "00000000" if bambu.access_code != "00000000" else "1").connect()
    assert err.value.code == "forbidden"
    assert render(err.value.reason).startswith(
        "the printer refused the access code: check the code set for this printer")


def test_a_wrong_serial_says_so(bambu: BambuPeer) -> None:  # noqa: F811
    d = BambuDriver("127.0.0.1", "WRONGSERIAL", bambu.access_code, mqtt_port=bambu.mqtt_port,
                    timeout_s=1.0)
    with pytest.raises(DriverError) as err:
        d.connect()
    assert "serial number (WRONGSERIAL)" in render(err.value.reason)


def test_an_oversized_mqtt_packet_is_refused_before_its_body_is_read(
        bambu: BambuPeer) -> None:  # noqa: F811
    """A broker (or anything at the printer's address) sending a 3 MB "report": the driver
    drops the link at the packet's declared length instead of reading it into memory,
    then reconnects and keeps reporting (issue 19: host calls get a size limit). The
    publisher is a plain MQTT client on the same real mosquitto the simulator uses."""
    import ssl as _ssl

    import paho.mqtt.client as mqtt

    from fabqueue.drivers.bambu import MAX_MQTT_PACKET

    d = new_driver(bambu)
    sizes: list[int] = []
    real = d._on_message
    d._on_message = lambda c, u, m: (sizes.append(len(m.payload)), real(c, u, m))  # type: ignore[method-assign]
    d.connect()
    try:
        assert d.status().state is not MachineState.OFFLINE
        sender = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        sender.username_pw_set("bblp", bambu.access_code)
        sender.tls_set(cert_reqs=_ssl.CERT_NONE)
        sender.tls_insecure_set(True)
        sender.connect("127.0.0.1", bambu.mqtt_port)
        sender.loop_start()
        big = b'{"print": {"command": "push_status", "x": "' + b"A" * (3 << 20) + b'"}}'
        sender.publish(f"device/{bambu.serial}/report", big, qos=0).wait_for_publish(30)
        sender.loop_stop()
        sender.disconnect()
        wait_for(lambda: d._connected is False or len(sizes) > 0, timeout=30,
                 what="the driver to meet the big packet")
        wait_for(lambda: d._connected, timeout=30, what="the driver to reconnect")
        until(d, lambda s: s.state is not MachineState.OFFLINE, "reports again")
    finally:
        d.close()
    assert sizes and max(sizes) <= MAX_MQTT_PACKET, "the big packet was read whole"
