"""PrusaLink quirks the real 0.8.1 showed only now and then (../shared/peers/prusalink/
README.md), injected here with httpx's MockTransport because the real server can't be made
to repeat them on demand: a job answering 404 right after its upload's 201, and the first
poll of a new job still showing the previous job's 100 %."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from fabqueue.drivers.base import MachineState, Outcome
from fabqueue.drivers.prusalink import PrusaLinkDriver


class Printer:
    """The answers the driver gets, changed by the test between polls."""

    def __init__(self) -> None:
        self.state = "IDLE"
        self.job: dict[str, Any] | None = None
        self.job_status = 200

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "PUT" and path.startswith("/api/v1/files/"):
            return httpx.Response(201)
        if path == "/api/v1/status":
            body: dict[str, Any] = {"printer": {"state": self.state, "temp_nozzle": 20.0},
                                    "storage": {"name": "USB", "path": "/usb",
                                                "read_only": False}}
            if self.job:
                body["job"] = {"id": self.job["id"], "progress": self.job["progress"]}
            return httpx.Response(200, json=body)
        if path == "/api/v1/job":
            if self.job_status != 200:
                return httpx.Response(self.job_status, text="Not Found")
            if not self.job:
                return httpx.Response(204)
            return httpx.Response(200, content=json.dumps(self.job).encode(),
                                  headers={"content-type": "application/json"})
        return httpx.Response(200, json={})


def driver_for(printer: Printer) -> PrusaLinkDriver:
    d = PrusaLinkDriver("http://printer.test", "k")
    d.http._client = httpx.Client(base_url="http://printer.test",
                                  transport=httpx.MockTransport(printer.handle))
    return d


def test_a_404_after_the_upload_and_a_stale_100_percent_are_not_an_end(tmp_path: Path) -> None:
    printer = Printer()
    d = driver_for(printer)
    program = tmp_path / "p.gcode"
    program.write_text("G28\n")
    assert d.storage() == "usb"  # the spec's storage object (the MK4's USB stick)
    d.start("fq-7.gcode", program)
    printer.state, printer.job_status = "PRINTING", 404  # the job not there yet
    st = d.status()
    assert st.state is MachineState.RUNNING and st.outcome is None
    printer.job_status = 200
    printer.job = {"id": 2, "state": "PRINTING", "progress": 100.0,  # the previous job's
                   "file": {"name": "fq-7.gcode", "display_name": "fq-7.gcode"}}
    st = d.status()
    assert st.job_name == "fq-7.gcode" and st.progress is None and st.outcome is None
    printer.job["progress"] = 12.0
    assert d.status().progress == 12.0
    printer.state, printer.job = "FINISHED", None  # 0.8.1: no job shown once it ended
    st = d.status()
    assert st.outcome is Outcome.DONE and st.progress == 100.0 and st.job_name == "fq-7.gcode"
