"""Machines imported while ``fabqueue serve`` runs get a device worker within seconds, and
one removed loses it: a thread of the device host (the default), or a device-worker process
of their own (``FABQUEUE_MACHINES_IN_ONE_PROCESS=false``)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.conftest import own_database, query, wait_for
from tests.test_serve import Server

pytestmark = pytest.mark.stack  # again on PostgreSQL and an external Redis

DEVICE_TOML = """
[[site]]
id = "kc"
name = "Visagino kultūros centras"
[[device]]
id = "late-1"
site = "kc"
kind = "printer"
driver = "simulated"
build_volume_mm = [250, 210, 220]
materials = ["PLA"]
profile = "prusa_mk4"
"""


def commands(server: Server) -> list[list[str]]:
    out = []
    for p in psutil.Process(server.proc.pid).children():
        with contextlib.suppress(psutil.NoSuchProcess):
            out.append(p.cmdline())
    return out


def device_workers(server: Server, data: Path) -> set[str]:
    """The machines driven now: a lease held (a worker took it, and gives it back when it
    stops) by a device-worker process of their own, or by the one device host."""
    leased = {row[0] for row in query(data, "SELECT id FROM devices WHERE lease_owner "
                                            "IS NOT NULL")}
    processes = {cmd[-1] for cmd in commands(server) if "device-worker" in cmd}
    if os.environ.get("FABQUEUE_MACHINES_IN_ONE_PROCESS") == "false":
        return leased & processes
    assert not processes and sum("device-host" in cmd for cmd in commands(server)) == 1
    return leased


@pytest.mark.parametrize("layout", ["host", "process-per-machine"])
def test_imported_machine_gets_a_worker_while_serving(tmp_path: Path, layout: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    if layout != "host":
        monkeypatch.setenv("FABQUEUE_MACHINES_IN_ONE_PROCESS", "false")
    data = tmp_path / "data"
    server = Server(data)
    try:
        assert device_workers(server, data) == set()
        toml = tmp_path / "lab.toml"
        toml.write_text(DEVICE_TOML)
        subprocess.run([sys.executable, "-m", "fabqueue", "devices", "import", str(toml),
                        "--data-dir", str(data)], check=True, capture_output=True,
                       env={**os.environ, **own_database(str(data))})
        wait_for(lambda: device_workers(server, data) == {"late-1"}, timeout=20,
                 what="a worker for the imported machine")
        toml.write_text(DEVICE_TOML.replace('profile = "prusa_mk4"',
                                            'profile = "prusa_mk4"\nenabled = false'))
        subprocess.run([sys.executable, "-m", "fabqueue", "devices", "import", str(toml),
                        "--data-dir", str(data)], check=True, capture_output=True,
                       env={**os.environ, **own_database(str(data))})
        wait_for(lambda: device_workers(server, data) == set(), timeout=30,
                 what="the disabled machine's worker to stop")
    finally:
        server.stop(signal.SIGTERM)
