"""Bambu Lab HMS (health management) codes in words.

A report's ``hms`` list holds ``{"attr": int, "code": int}`` pairs; Bambu Studio and Bambu's
wiki (wiki.bambulab.com, "HMS error code") write them as four 16-bit hex groups,
``AAAA_BBBB_CCCC_DDDD`` = attr high, attr low, code high, code low (the form ha-bambulab
uses too). Only a few common codes are named here; the rest are shown as the code, which
staff can look up on Bambu's wiki.
"""

from __future__ import annotations

from typing import Any

from fabqueue.core.reasons import N_, reason

KNOWN = {
    "0300_0100_0001_0001": N_("the heatbed temperature is abnormal; the heater may be "
                             "short-circuited"),
    "0300_0200_0001_0001": N_("the nozzle temperature is abnormal; the heater may be "
                             "short-circuited"),
    "0300_0400_0002_0001": N_("the part cooling fan is too slow or stopped"),
    "0700_2000_0002_0001": N_("AMS slot 1 has run out of filament"),
}


def hms_code(entry: dict[str, Any]) -> str:
    attr = int(entry.get("attr", 0)) & 0xFFFFFFFF  # two 32-bit words
    code = int(entry.get("code", 0)) & 0xFFFFFFFF
    return f"{attr >> 16:04X}_{attr & 0xFFFF:04X}_{code >> 16:04X}_{code & 0xFFFF:04X}"


def hms_reason(entries: Any) -> str | None:
    """The first HMS entry as a reason (named where known), or None when there is none."""
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        try:
            code = hms_code(entry)
        except (TypeError, ValueError, OverflowError):
            continue
        text = KNOWN.get(code)
        if text:
            return reason("bambu_hms", N_("printer health message {code}: {text}"), code=code,
                          text=reason("bambu_hms_text", text))
        return reason("bambu_hms_code", N_("printer health message {code}"), code=code)
    return None
