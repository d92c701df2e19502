"""Pytest fixtures that run the real Spoolman 0.26.1 server (``scripts/install_spoolman_peer.sh``
installs it under ``<repo>/.peers/spoolman``; see ../shared/peers/spoolman/README.md).

``spoolman_peer`` is registered once in tests/conftest.py, as every peer's session fixture.
``spoolman_peer`` (session-scoped) starts Spoolman once per session on a free loopback port,
with a SQLite database in a folder of its own; ``stop()`` and ``start()`` take it down and
bring it back on the same port and data (a Spoolman that was away). Without the installed
peer the tests skip, except under CI (``CI=true``): there they fail.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port, stop_process, unavailable

REPO = Path(__file__).resolve().parents[1]
PEER = Path(os.environ.get("FABQUEUE_SPOOLMAN_PEER", REPO / ".peers" / "spoolman"))
APP = PEER / "spoolman-0.26.1"
VENV = PEER / "venv"
# ~8 s on an idle 2-core machine; its migrations run at start, and a loaded one (load 60
# seen) takes minutes: a bound against a hang, not a speed test
READY_TIMEOUT_S = 300.0


@dataclass
class SpoolmanPeer:
    port: int
    data: Path
    proc: subprocess.Popen[bytes] | None = None
    log: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "PATH": f"{VENV / 'bin'}:{os.environ.get('PATH', '')}",
               "SPOOLMAN_DB_TYPE": "sqlite", "SPOOLMAN_DIR_DATA": str(self.data),
               "SPOOLMAN_DIR_LOGS": str(self.data), "SPOOLMAN_DIR_BACKUPS": str(self.data),
               "SPOOLMAN_AUTOMATIC_BACKUP": "FALSE"}
        logfile = self.data / f"server-{len(self.log)}.log"
        self.log.append(logfile)
        out = logfile.open("wb")
        self.proc = subprocess.Popen(
            [str(VENV / "bin" / "uvicorn"), "spoolman.main:app", "--host", "127.0.0.1",
             "--port", str(self.port)], cwd=APP, env=env, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if httpx.get(f"{self.url}/api/v1/info", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        tail = logfile.read_text(errors="replace")[-2000:]
        self.stop()
        pytest.fail(f"Spoolman did not start on port {self.port}:\n{tail}", pytrace=False)

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        r = httpx.request(method, f"{self.url}/api/v1{path}", timeout=15, **kwargs)
        assert r.status_code < 300, r.text
        return r.json()

    def new_spool(self, material: str = "PLA", net_g: float = 1000.0, empty_g: float = 200.0,
                  location: str = "") -> dict[str, Any]:
        """A filament and a full spool of it, as staff would add them in Spoolman."""
        filament = self.api("POST", "/filament", json={
            "name": f"{material} test", "material": material, "density": 1.24,
            "diameter": 1.75, "weight": net_g, "spool_weight": empty_g})
        return dict(self.api("POST", "/spool", json={
            "filament_id": filament["id"], "location": location, "lot_nr": "L-1",
            "initial_weight": net_g}))


@pytest.fixture(scope="session")
def spoolman_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpoolmanPeer]:
    if not (VENV / "bin" / "uvicorn").exists() or not (APP / "spoolman" / "main.py").exists():
        unavailable(f"the Spoolman peer is not installed in {PEER} "
                    "(scripts/install_spoolman_peer.sh, or scripts/setup.sh --test)")
    peer = SpoolmanPeer(free_port(), tmp_path_factory.mktemp("spoolman"))
    peer.start()
    try:
        yield peer
    finally:
        peer.stop()
