"""Whether a GRBL controller's ``$$`` settings suit the laser it drives: a pure rule, so the
device worker checks it at connect without importing the laser planning (numpy, SciPy, lxml:
~30 MB in every device host, bench/RESULTS.md, "Many machines per process")."""

from __future__ import annotations

import math
from collections.abc import Mapping

from fabqueue.core.findings import N_, Finding, finding
from fabqueue.core.specs import LaserSpec


def check_laser_settings(settings: Mapping[str, object], laser: LaserSpec) -> list[Finding]:
    """Problems with GRBL's ``$$`` values for this laser (empty list: ready to start)."""
    problems: list[Finding] = []
    if _number(settings.get("$32")) != 1:
        problems.append(finding("laser_mode_off", N_(
            "Laser mode is off on {laser} ($32={value}); set $32=1 before starting a job."),
            laser=laser.id, value=settings.get("$32")))
    max_s = _number(settings.get("$30"))
    if max_s is not None and not math.isclose(max_s, laser.max_power_s):
        problems.append(finding("laser_power_scale", N_(
            "{laser} reports $30={value} but is configured with a maximum S of {expected}; "
            "power would be scaled wrong."), laser=laser.id, value=max_s,
            expected=laser.max_power_s))
    return problems


def _number(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
