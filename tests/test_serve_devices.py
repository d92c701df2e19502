"""Machines imported while ``fabqueue serve`` runs get a device worker within seconds, and
one removed loses it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.conftest import own_database, wait_for
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


def device_workers(server: Server) -> set[str]:
    out = set()
    for p in psutil.Process(server.proc.pid).children():
        try:
            cmd = p.cmdline()
        except psutil.NoSuchProcess:
            continue
        if "device-worker" in cmd:
            out.add(cmd[-1])
    return out


def test_imported_machine_gets_a_worker_while_serving(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = Server(data)
    try:
        assert device_workers(server) == set()
        toml = tmp_path / "lab.toml"
        toml.write_text(DEVICE_TOML)
        subprocess.run([sys.executable, "-m", "fabqueue", "devices", "import", str(toml),
                        "--data-dir", str(data)], check=True, capture_output=True,
                       env={**os.environ, **own_database(str(data))})
        wait_for(lambda: device_workers(server) == {"late-1"}, timeout=20,
                 what="a worker for the imported machine")
        toml.write_text(DEVICE_TOML.replace('profile = "prusa_mk4"',
                                            'profile = "prusa_mk4"\nenabled = false'))
        subprocess.run([sys.executable, "-m", "fabqueue", "devices", "import", str(toml),
                        "--data-dir", str(data)], check=True, capture_output=True,
                       env={**os.environ, **own_database(str(data))})
        wait_for(lambda: device_workers(server) == set(), timeout=30,
                 what="the disabled machine's worker to stop")
    finally:
        server.stop(signal.SIGTERM)
