"""``fabqueue serve`` with a network printer from the devices file (issue 12, "done when"), once
per host: a resident's model is approved, sliced with the device's profile, sent to the host,
shown printing (held at its first fan-on) with live progress on the machine board, printed
to the end, and the bed-clear interlock holds. Real Moonraker + Klippy and the real PrusaLink
0.8.1; for Bambu Lab the simulated printer (real mosquitto + implicit FTPS; no real Bambu peer
can run here)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.bambu_fixtures import bambu  # noqa: F401
from tests.conftest import own_database, sample, wait_for
from tests.klipper_fixtures import klipper  # noqa: F401
from tests.prusalink_fixtures import prusalink  # noqa: F401
from tests.test_serve import Server

LAB_TOML = """
[[site]]
id = "{site}"
name = "Lab {site}"
[[material]]
id = "PLA"
kind = "filament"
density_g_cm3 = 1.24
price_per_kg = 20.0
[[device]]
id = "{device}"
site = "{site}"
kind = "printer"
{connection}
materials = ["PLA"]
profile = "prusa_mk4"
"""


@dataclass
class Host:
    """One printer host as this test drives it, beside ``fabqueue serve``."""

    site: str
    device: str
    connection: str  # the device's lines in the devices file
    env: tuple[str, str]  # the secret's variable, and its value
    hold: Callable[[bool], None]  # prints pause at their first fan-on, or not
    paused: Callable[[], bool]
    printing: Callable[[int], bool]  # the host holds this job, by our name for it
    untouched: Callable[[int, int], bool]  # the second job never reached the host


def moonraker_host(k: Any) -> Host:
    return Host(
        "kl", "voron-1",
        f'driver = "moonraker"\nurl = "{k.url}"\napi_key_env = "FABQUEUE_DEVICE_SERVE_VORON_KEY"\n'
        "build_volume_mm = [250, 210, 220]",
        ("FABQUEUE_DEVICE_SERVE_VORON_KEY", k.api_key),
        k.hold,
        lambda: k.print_state()["state"] == "paused",
        lambda job: k.print_state()["filename"] == f"fabqueue/fq-{job}.gcode",
        lambda job, _: k.print_state()["filename"] == f"fabqueue/fq-{job}.gcode")


def prusalink_host(p: Any) -> Host:
    return Host(
        "pl", "mk3s-1",
        f'driver = "prusalink"\nurl = "{p.url}"\n'
        'password_env = "FABQUEUE_DEVICE_SERVE_MK3S_PASSWORD"\nbuild_volume_mm = [250, 210, 220]',
        ("FABQUEUE_DEVICE_SERVE_MK3S_PASSWORD", p.password),
        p.hold,
        lambda: p.state() == "PAUSED",
        lambda job: (p.job() or {})["file"]["display_name"] == f"fq-{job}.gcode",
        lambda _, second: not (p.gcodes / f"fq-{second}.gcode").exists())


def bambu_host(b: Any) -> Host:
    def hold(on: bool) -> None:
        b.printer.hold = on

    return Host(
        "bb", "p1s-1",
        f'driver = "bambu"\nhost = "127.0.0.1"\nserial = "{b.serial}"\n'
        f'access_code_env = "FABQUEUE_DEVICE_SERVE_BAMBU_CODE"\nmqtt_port = {b.mqtt_port}\n'
        f"ftps_port = {b.ftps_port}\nbuild_volume_mm = [256, 256, 256]",
        ("FABQUEUE_DEVICE_SERVE_BAMBU_CODE", b.access_code),
        hold,
        lambda: b.state()["gcode_state"] == "PAUSE",
        lambda job: b.state()["gcode_file"] == f"fq-{job}.gcode",
        lambda job, second: b.starts(f"fq-{second}.gcode") == 0
        and b.starts(f"fq-{job}.gcode") == 1)


pytestmark = pytest.mark.stack  # again on PostgreSQL and an external Redis

HOSTS = {"moonraker": ("klipper", moonraker_host), "prusalink": ("prusalink", prusalink_host),
         "bambu": ("bambu", bambu_host)}


def fabqueue(data: Path, *args: str, stdin: str | None = None) -> None:
    subprocess.run([sys.executable, "-m", "fabqueue", *args, "--data-dir", str(data)],
                   check=True, capture_output=True, input=stdin, text=True, timeout=120,
                   env={**os.environ, **own_database(str(data))})


# Moonraker's again on PostgreSQL and an external Redis (serve's path does not depend on the
# host); the others' protocols are the dispatch tests' (tests/queue/test_dispatch_*.py)
@pytest.mark.parametrize("driver", [d if d == "moonraker" else pytest.param(
    d, marks=pytest.mark.host_protocol) for d in HOSTS])
def test_serve_prints_a_residents_model(tmp_path: Path, request: pytest.FixtureRequest,
                                        driver: str) -> None:
    if shutil.which("prusa-slicer") is None:
        pytest.fail("PrusaSlicer is not installed (scripts/setup.sh --test)")
    fixture, make = HOSTS[driver]
    host = make(request.getfixturevalue(fixture))
    cube = sample("20mm-xyz-cube.stl")
    data = tmp_path / "data"
    toml = tmp_path / "lab.toml"
    toml.write_text(LAB_TOML.format(site=host.site, device=host.device,
                                    connection=host.connection))
    fabqueue(data, "devices", "import", str(toml))
    fabqueue(data, "users", "add", "lab-staff", "--role", "staff", "--site", host.site,
             "--password-stdin", stdin="staff-password-1\n")
    fabqueue(data, "users", "add", "lab-resident", "--role", "resident", "--password-stdin",
             stdin="resident-password-1\n")
    os.environ[host.env[0]] = host.env[1]  # serve's env is ours
    host.hold(True)  # time to see the print on the board
    server = Server(data)
    device = f"/api/devices/{host.device}"
    try:
        with httpx.Client(base_url=server.url, timeout=30,
                          headers={"Accept-Language": "en"}) as http:
            def bearer(name: str, password: str) -> dict[str, str]:
                r = http.post("/api/auth/token", data={"username": name, "password": password})
                assert r.status_code == 200, r.text
                return {"Authorization": f"Bearer {r.json()['access_token']}"}

            def status(j: int) -> str:
                return str(http.get(f"/api/jobs/{j}", headers=resident).json()["status"])

            resident = bearer("lab-resident", "resident-password-1")
            staff = bearer("lab-staff", "staff-password-1")
            jobs = []
            for name in (cube.name, "second.stl"):
                r = http.post("/api/jobs", headers=resident,
                              data={"material": "PLA", "site": host.site},
                              files={"file": (name, cube.read_bytes(), "model/stl")})
                assert r.status_code == 201, r.text
                jobs.append(int(r.json()["id"]))
            for j in jobs:
                wait_for(lambda j=j: status(j) == "awaiting_approval", timeout=90,
                         interval=0.3, what="analysis")
            job, second = jobs
            assert http.post(f"/api/jobs/{job}/approve", headers=staff).status_code == 200
            def held() -> bool:
                if host.paused():
                    return True
                # a job that ended (an upload refused under load, say) fails here, at once,
                # with its reason and serve's log, instead of after the whole wait
                j = http.get(f"/api/jobs/{job}", headers=resident).json()
                assert j["status"] not in ("done", "failed", "interrupted", "cancelled"), (
                    j, server.output()[-4000:])
                return False

            wait_for(held, timeout=180, interval=0.3,
                     what=f"the sliced cube printing on {driver}")
            assert host.printing(job)
            dev = wait_for(lambda: (d := http.get(device, headers=staff).json())[
                "state"] == "paused" and d, timeout=30, what="the board to show the print")
            assert 0 < dev["progress"] < 100 and dev["job"] == job
            board = http.get("/staff/machines", params={"site": host.site}, headers=staff)
            tile = f'id="device-{host.device}"'
            assert board.status_code == 200 and tile in board.text
            card = board.text.split(tile, 1)[1].split("</article>", 1)[0]
            assert re.search(r'<progress max="100" value="[1-9]', card), card
            host.hold(False)
            assert http.post(f"{device}/resume", headers=staff).status_code in (200, 202)
            done = wait_for(lambda: (j := http.get(f"/api/jobs/{job}", headers=resident)
                                     .json())["status"] in ("done", "failed", "interrupted")
                            and j, timeout=90, what="the print to end")
            assert done["status"] == "done", done
            wait_for(lambda: http.get(device, headers=staff).json()["state"] ==
                     "needs_bed_clear", timeout=20, what="needs_bed_clear")
            # the interlock: another approved job waits until staff say the bed is clear
            assert http.post(f"/api/jobs/{second}/approve", headers=staff).status_code == 200
            wait_for(lambda: status(second) == "ready", timeout=120,
                     what="the second job ready")
            time.sleep(3)
            assert status(second) == "ready"
            assert host.untouched(job, second)
    finally:
        server.kill()
