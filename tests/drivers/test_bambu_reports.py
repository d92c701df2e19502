"""Reports are outside input: odd or hostile ones never break ``status()`` (no peer needed:
the messages are fed to the driver's MQTT callback directly)."""

from __future__ import annotations

import json
from types import SimpleNamespace

from fabqueue.core.reasons import render
from fabqueue.drivers.bambu import BambuDriver
from fabqueue.drivers.bambu_hms import hms_code
from fabqueue.drivers.base import MachineState


def fed(*payloads: object) -> BambuDriver:
    d = BambuDriver("127.0.0.1", "S1", "code")
    d._connected, d._client = True, object()  # type: ignore[assignment]
    for p in payloads:
        raw = p if isinstance(p, bytes) else json.dumps(p).encode()
        d._on_message(None, None, SimpleNamespace(payload=raw))  # type: ignore[arg-type]
    return d


def test_incremental_reports_merge_into_one_state() -> None:
    d = fed({"print": {"command": "push_status", "gcode_state": "RUNNING", "mc_percent": 10,
                       "mc_remaining_time": 3, "gcode_file": "/sdcard/fq-1.gcode",
                       "nozzle_temper": 210.5, "nozzle_target_temper": 215}},
            {"print": {"command": "push_status", "mc_percent": 42}})
    st = d.status()
    assert st.state is MachineState.RUNNING and st.progress == 42.0
    assert st.time_left_s == 180.0 and st.job_name == "fq-1.gcode"
    assert st.temperatures == {"tool0": {"actual": 210.5, "target": 215.0}}


def test_hostile_reports_are_ignored_or_read_as_unknown() -> None:
    d = fed(b"\xff not json", b"[1, 2]", {"print": "x"}, {"print": {"command": "push_status",
            "gcode_state": ["?"], "mc_percent": "NaN", "mc_remaining_time": 1e300,
            "hms": 7, "nozzle_temper": {"a": 1}, "gcode_file": 12}},
            {"print": {"command": "push_status", "hms": [{"attr": "x"}, "y",
                                                         {"attr": 1 << 40, "code": -1}]}})
    st = d.status()
    assert st.state is MachineState.IDLE and st.progress is None
    assert st.temperatures == {"tool0": {"actual": None, "target": None}}
    assert render(st.message).startswith("printer health message ")


def test_hms_codes_are_written_as_bambu_does() -> None:
    assert hms_code({"attr": 0x03000400, "code": 0x00020001}) == "0300_0400_0002_0001"
