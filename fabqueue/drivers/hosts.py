"""Drivers for printer hosts beyond OctoPrint, built from a device's connection settings.

Secrets never sit in the devices file: it names the environment variable (``api_key_env``,
``access_code_env``) and the key is read here, when the device worker connects.
"""

from __future__ import annotations

import os
from typing import Any

from fabqueue.core.device_secrets import DEVICE_SECRET_PREFIX, secret_name_problem
from fabqueue.core.reasons import N_, reason
from fabqueue.drivers.base import Driver, DriverError


def check_secret_name(variable: str) -> None:
    """A DriverError unless ``variable`` is meant for device keys. A row written before the
    rule (or by hand) must not send FABQUEUE_SECRET_KEY or DATABASE_URL to a host: such a
    variable is not even read."""
    if secret_name_problem(variable):
        raise DriverError(reason("secret_name_refused", N_(
            "the key variable {variable} is not a device key: its name must start with "
            "{prefix}"), variable=variable, prefix=DEVICE_SECRET_PREFIX), code="no_api_key")


def secret(variable: str | None, *, required: bool) -> str | None:
    """The value of the environment variable a device names, or a plain DriverError."""
    if not variable:
        if required:
            raise DriverError(reason("no_secret_named", N_(
                "no environment variable is named for this machine's key")), code="no_api_key")
        return None
    check_secret_name(variable)
    value = os.environ.get(variable, "")
    if not value:
        raise DriverError(reason("secret_not_set", N_(
            "the key variable {variable} is not set in the environment"), variable=variable),
            code="no_api_key")
    return value


def build_host_driver(driver: str, conn: dict[str, Any]) -> Driver:
    if driver == "moonraker":
        from fabqueue.drivers.moonraker import MoonrakerDriver

        # No key named: Moonraker trusts the worker's address (its trusted_clients).
        return MoonrakerDriver(conn["url"], secret(conn.get("api_key_env"), required=False))
    if driver == "bambu":
        from urllib.parse import urlsplit

        from fabqueue.drivers.bambu import BambuDriver

        host = conn.get("host") or urlsplit(str(conn.get("url") or "")).hostname or ""
        code = secret(conn.get("access_code_env"), required=True) or ""
        return BambuDriver(host, str(conn.get("serial") or ""), code,
                           mqtt_port=int(conn.get("mqtt_port") or 8883),
                           ftps_port=int(conn.get("ftps_port") or 990),
                           ca_file=conn.get("ca_file"))
    if driver == "prusalink":
        from fabqueue.drivers.prusalink import PrusaLinkDriver

        # X-Api-Key when a key is named; else digest auth as "maker" with password_env.
        key = secret(conn.get("api_key_env"), required=not conn.get("password_env"))
        password = None if key else secret(conn.get("password_env"), required=True)
        return PrusaLinkDriver(conn["url"], key, password=password)
    raise DriverError(reason("unknown_driver", N_("unknown driver {driver}"), driver=driver),
                      code="bad_driver")
