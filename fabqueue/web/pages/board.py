"""The staff machine board's view of one machine: what its tile shows and which buttons make
sense in its state. Pure presentation over the device row (the template stays plain)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from fabqueue.core.devices import DeviceState
from fabqueue.core.findings import N_
from fabqueue.core.reasons import decode, render
from fabqueue.store.models import Device, Job

#: Temperature sensors as drivers name them (OctoPrint's ``tool0``, ``bed``) → people's words.
TEMPERATURE_NAMES = {"tool0": N_("nozzle"), "tool1": N_("nozzle 2"), "bed": N_("bed"),
                     "chamber": N_("chamber")}
#: Checklist items at the laser (the API's keys) → what the operator confirms.
CHECKLIST_ITEMS = {
    "material": N_("The sheet is loaded and matches the job"),
    "focus": N_("Focus is set"),
    "air": N_("Air assist and extraction are on"),
    "lid": N_("The lid is closed"),
}
#: Reasons meaning the laser head is moving for a frame run (so STOP applies).
FRAMING = frozenset({"frame_running", "start_after_frame"})
ACTIVE = frozenset({DeviceState.BUSY, DeviceState.PAUSED, DeviceState.HEATING})


@dataclass
class Tile:
    device: Device
    reason: str  # in the reader's language, "" when none
    framing: bool
    confirmation_left_s: int | None  # seconds the operator's confirmation stays valid
    temperatures: list[tuple[str, float | None, float | None]] = field(default_factory=list)
    buttons: set[str] = field(default_factory=set)

    @property
    def active(self) -> bool:
        return self.device.state in ACTIVE or self.framing


def buttons_for(d: Device, framing: bool) -> set[str]:
    """Only the buttons that make sense in the machine's state."""
    state = d.state
    out: set[str] = set()
    if state == DeviceState.NEEDS_BED_CLEAR:
        out.add("bed_cleared")
    if d.current_job_id and state in (DeviceState.BUSY, DeviceState.HEATING):
        out.add("pause")
    if d.current_job_id and state == DeviceState.PAUSED:
        out.add("resume")
    if d.current_job_id and d.kind == "printer" and state in ACTIVE:
        out.add("cancel")
    if state == DeviceState.ERROR:
        out.add("reset")
    if state in ACTIVE or framing:
        out.add("stop")
    return out


def waiting_for(d: Device, ready: list[Job]) -> list[Job]:
    """The ready laser jobs this laser may start: its materials, not pinned elsewhere."""
    return [j for j in ready if j.material_id in (d.materials or [])
            and j.pinned_device_id in (None, d.id)]


def tile(d: Device, gettext: Any, now: float | None = None) -> Tile:
    found = decode(d.state_reason)
    framing = found is not None and found.code in FRAMING
    conf = d.confirmation or {}
    left = None
    if conf.get("expires"):
        left = max(0, int(float(conf["expires"]) - (now or time.time())))
    temps = []
    for name, value in (d.temperatures or {}).items():
        actual = value.get("actual") if isinstance(value, dict) else value
        target = value.get("target") if isinstance(value, dict) else None
        label = TEMPERATURE_NAMES.get(name)
        temps.append((gettext(label) if label else name, actual, target))
    return Tile(d, render(d.state_reason, gettext), framing, left, temps, buttons_for(d, framing))
