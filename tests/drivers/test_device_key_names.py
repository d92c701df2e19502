"""A device may only name variables meant for device keys (``FABQUEUE_DEVICE_…``): the worker
sends the value to the device's URL, so naming ``FABQUEUE_SECRET_KEY`` with a URL of one's own
would hand out the key that signs every login (issue 19)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fabqueue.config import Settings
from fabqueue.core.device_secrets import DEVICE_SECRET_PREFIX
from fabqueue.core.reasons import decode
from fabqueue.drivers.base import DriverError
from fabqueue.queue.machines import build_driver
from fabqueue.store.inventory import DeviceIn
from fabqueue.store.models import Device

FORBIDDEN = ["FABQUEUE_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "FABQUEUE_DATABASE_URL",
             "HOME", "fabqueue_device_lower", "FABQUEUE_DEVICE_", "PGPASSWORD"]
HOSTS = {
    "octoprint": ({"kind": "printer", "url": "http://127.0.0.1:9"}, "api_key_env"),
    "moonraker": ({"kind": "printer", "url": "http://127.0.0.1:9"}, "api_key_env"),
    "prusalink": ({"kind": "printer", "url": "http://127.0.0.1:9"}, "password_env"),
    "bambu": ({"kind": "printer", "host": "127.0.0.1", "serial": "01P00A1"}, "access_code_env"),
}


def device_doc(driver: str, variable: str) -> dict[str, object]:
    extra, key = HOSTS[driver]
    return {"id": "p", "site": "lab", "driver": driver, "build_volume_mm": (250, 210, 220),
            **extra, key: variable}


@pytest.mark.parametrize("driver", sorted(HOSTS))
@pytest.mark.parametrize("variable", FORBIDDEN)
def test_import_refuses_a_variable_that_is_not_a_device_key(driver: str, variable: str) -> None:
    with pytest.raises(ValidationError) as err:
        DeviceIn.model_validate(device_doc(driver, variable))
    assert DEVICE_SECRET_PREFIX in str(err.value)


@pytest.mark.parametrize("driver", sorted(HOSTS))
def test_import_takes_a_device_key_variable(driver: str) -> None:
    doc = DeviceIn.model_validate(device_doc(driver, "FABQUEUE_DEVICE_P_1_KEY"))
    assert "FABQUEUE_DEVICE_P_1_KEY" in doc.connection().values()


@pytest.mark.parametrize("driver", sorted(HOSTS))
def test_the_worker_never_reads_a_settings_variable(driver: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # A row written before the rule, or by hand in the database: the import never saw it.
    monkeypatch.setenv("FABQUEUE_SECRET_KEY", "the-signing-key-" + "x" * 40)
    extra, key = HOSTS[driver]
    conn = {k: v for k, v in extra.items() if k != "kind"} | {key: "FABQUEUE_SECRET_KEY"}
    device = Device(id="p", site_id="lab", kind="printer", driver=driver, size_mm=[250, 210, 220],
                    connection=conn, settings={})
    with pytest.raises(DriverError) as err:
        build_driver(device)
    finding = decode(err.value.reason)
    assert finding is not None and finding.code == "secret_name_refused"
    assert "the-signing-key" not in str(err.value.reason)


def test_no_setting_of_fabqueue_is_under_the_device_prefix() -> None:
    # pydantic-settings reads FABQUEUE_<field>: a field named device_… would make a device key
    # variable a setting, and the rule above would let a device send it.
    prefix = DEVICE_SECRET_PREFIX.removeprefix("FABQUEUE_").lower()
    assert Settings.model_config.get("env_prefix") == "FABQUEUE_"
    assert not [f for f in Settings.model_fields if f.lower().startswith(prefix)]
