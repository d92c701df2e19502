"""Admin's "test connection": the machine's worker polls it and answers."""

from __future__ import annotations

from collections.abc import Callable

from fabqueue.simulators.grbl_emulator import GrblEmulator
from tests.conftest import Stack, wait_for
from tests.grbl_fixtures import make_grbl_emulator  # noqa: F401
from tests.queue.helpers import device_workers, new_site, printer
from tests.queue.test_dispatch_lasers import laser


def test_connection_test_answers_through_the_device_worker(
        stack: Stack, client, make_grbl_emulator: Callable[..., GrblEmulator]) -> None:  # noqa: F811
    emulator = make_grbl_emulator()
    site = new_site(stack, [laser("t-laser", emulator.device_path),
                            {**printer("t-gone", ["PLA"]), "driver": "grbl", "kind": "laser",
                             "bed_mm": (300, 200), "port": "/dev/fabqueue-no-such-port",
                             "build_volume_mm": None, "profile": None,
                             "simulated_speed": None}])
    s = stack.token(client, stack.user("staff", site))
    r = stack.token(client, stack.user("resident"))
    assert client.post("/api/devices/t-laser/test", headers=r).status_code == 403
    no_worker = client.post("/api/devices/t-laser/test", headers=s)
    assert no_worker.status_code == 504 and "worker" in no_worker.json()["detail"]
    with device_workers(stack, ["t-laser", "t-gone"]):
        wait_for(lambda: client.get("/api/devices/t-laser", headers=s).json()["state"] == "idle",
                 timeout=15, what="the laser's worker to connect")
        wait_for(lambda: client.get("/api/devices/t-gone", headers=s).json()["state_reason"]
                 not in (None, "starting"), timeout=15, what="the missing port to be tried")
        ok = client.post("/api/devices/t-laser/test", headers=s)
        assert ok.status_code == 200, ok.text
        assert ok.json()["ok"] is True and ok.json()["state"] == "idle"
        gone = client.post("/api/devices/t-gone/test", headers=s)
        assert gone.status_code == 409
        assert "t-gone" in gone.json()["detail"]
