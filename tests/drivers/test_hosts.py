"""Host drivers are built from a device's connection; keys come from the environment."""

from __future__ import annotations

import pytest

from fabqueue.core.reasons import render
from fabqueue.drivers.base import DriverError
from fabqueue.drivers.hosts import build_host_driver, secret
from fabqueue.drivers.moonraker import MoonrakerDriver


def test_moonraker_key_is_read_from_the_named_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FABQUEUE_DEVICE_TEST_HOSTS_KEY", "k-123")
    driver = build_host_driver("moonraker", {"url": "http://127.0.0.1:1/",
                                             "api_key_env": "FABQUEUE_DEVICE_TEST_HOSTS_KEY"})
    assert isinstance(driver, MoonrakerDriver)
    assert driver.http.url == "http://127.0.0.1:1"
    assert driver.http._client.headers["X-Api-Key"] == "k-123"
    trusted = build_host_driver("moonraker", {"url": "http://127.0.0.1:1"})
    assert "X-Api-Key" not in trusted.http._client.headers  # type: ignore[attr-defined]


def test_a_named_but_unset_key_is_a_plain_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FABQUEUE_DEVICE_NO_SUCH", raising=False)
    with pytest.raises(DriverError) as err:
        secret("FABQUEUE_DEVICE_NO_SUCH", required=False)
    assert err.value.code == "no_api_key"
    assert render(err.value.reason) == ("the key variable FABQUEUE_DEVICE_NO_SUCH is not set in "
                                        "the environment")
    with pytest.raises(DriverError):
        secret(None, required=True)
    assert secret(None, required=False) is None


def test_a_closed_port_is_offline_not_a_crash() -> None:
    driver = MoonrakerDriver("http://127.0.0.1:9", timeout_s=1.0)  # discard port: refused
    st = driver.status()
    assert st.state.value == "offline" and "did not answer" in render(st.message)
    assert driver.find("fq-1.gcode") is None


def test_bambu_is_built_from_host_serial_and_the_access_code_variable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from fabqueue.drivers.bambu import BambuDriver

    monkeypatch.setenv("FABQUEUE_DEVICE_TEST_BAMBU_CODE", "12345678")
    driver = build_host_driver("bambu", {"url": "http://192.0.2.7", "serial": "01P00A1",
                                         "access_code_env": "FABQUEUE_DEVICE_TEST_BAMBU_CODE",
                                         "mqtt_port": 18883})
    assert isinstance(driver, BambuDriver)
    assert (driver.host, driver.serial, driver.access_code) == ("192.0.2.7", "01P00A1",
                                                                "12345678")
    assert (driver.mqtt_port, driver.ftps_port) == (18883, 990)
    with pytest.raises(DriverError) as err:  # the access code is not optional
        build_host_driver("bambu", {"host": "192.0.2.7", "serial": "01P00A1"})
    assert err.value.code == "no_api_key"


def test_a_bambu_device_needs_its_serial_and_access_code_variable() -> None:
    from pydantic import ValidationError

    from fabqueue.store.inventory import DeviceIn

    base = {"id": "p1s", "site": "lab", "kind": "printer", "driver": "bambu",
            "build_volume_mm": (256, 256, 256), "host": "192.0.2.7"}
    with pytest.raises(ValidationError, match="needs host, serial and access_code_env"):
        DeviceIn.model_validate(base)
    ok = DeviceIn.model_validate({**base, "serial": "01P00A1",
                                  "access_code_env": "FABQUEUE_DEVICE_P1S_CODE"})
    assert ok.connection() == {"host": "192.0.2.7", "serial": "01P00A1",
                               "access_code_env": "FABQUEUE_DEVICE_P1S_CODE"}
    with pytest.raises(ValidationError):  # no shell or path characters in a host
        DeviceIn.model_validate({**base, "host": "a; rm -rf /", "serial": "1",
                                 "access_code_env": "FABQUEUE_DEVICE_X"})
def test_prusalink_takes_an_api_key_or_a_digest_password(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from fabqueue.drivers.prusalink import PrusaLinkDriver

    monkeypatch.setenv("FABQUEUE_DEVICE_TEST_PL_KEY", "pl-key")
    monkeypatch.setenv("FABQUEUE_DEVICE_TEST_PL_PASSWORD", "pl-pass")
    keyed = build_host_driver("prusalink", {"url": "http://127.0.0.1:1",
                                            "api_key_env": "FABQUEUE_DEVICE_TEST_PL_KEY"})
    assert isinstance(keyed, PrusaLinkDriver)
    assert keyed.http._client.headers["X-Api-Key"] == "pl-key"
    digest = build_host_driver("prusalink", {"url": "http://127.0.0.1:1",
                                             "password_env": "FABQUEUE_DEVICE_TEST_PL_PASSWORD"})
    assert "X-Api-Key" not in digest.http._client.headers  # type: ignore[attr-defined]
    assert digest.http._client.auth is not None  # type: ignore[attr-defined]
    with pytest.raises(DriverError) as none:  # PrusaLink always wants one of the two
        build_host_driver("prusalink", {"url": "http://127.0.0.1:1"})
    assert none.value.code == "no_api_key"
    offline = PrusaLinkDriver("http://127.0.0.1:9", "k", timeout_s=1.0)
    assert offline.status().state.value == "offline" and offline.find("fq-1.gcode") is None
