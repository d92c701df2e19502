"""Which environment variables a device may name for its key (``api_key_env``,
``password_env``, ``access_code_env``).

The worker sends the named variable's value to the host the devices file points at, so a
devices file that could name any variable could send FabQueue's own signing key
(``FABQUEUE_SECRET_KEY``) or database password to a URL of the admin's choosing. Only names
under one prefix are device keys; no FabQueue setting starts with it (a test holds that).
"""

from __future__ import annotations

import re

DEVICE_SECRET_PREFIX = "FABQUEUE_DEVICE_"
_NAME = re.compile(r"^FABQUEUE_DEVICE_[A-Z0-9_]*[A-Z0-9]$")


def secret_name_problem(name: str) -> str | None:
    """Why ``name`` may not hold a device key (an English sentence), or None if it may."""
    if _NAME.match(name):
        return None
    return (f"{name!r} is not a device key variable: name one that starts with "
            f"{DEVICE_SECRET_PREFIX} (upper case letters, digits and _), e.g. "
            f"{DEVICE_SECRET_PREFIX}MK4_1_KEY; FabQueue's own settings can't be sent to a machine")
