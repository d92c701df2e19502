"""A laser with ``driver = "simulated"`` (the demo's, a lab trying FabQueue out) connects and
waits for work: it used to sit in error with "$32=None" because the simulated driver reported
no GRBL settings at all (issue 19)."""

from __future__ import annotations

from fabqueue.queue.device_worker import DeviceWorker
from fabqueue.store.models import Device
from tests.conftest import Stack
from tests.queue.helpers import new_site


def test_a_simulated_laser_reports_laser_settings_and_is_not_in_error(stack: Stack) -> None:
    new_site(stack, [{"id": "sim-laser", "site": "", "kind": "laser", "driver": "simulated",
                      "bed_mm": (600, 400), "materials": ["plywood-3mm"],
                      "max_power_s": 255}])
    worker = DeviceWorker(stack.ctx, "sim-laser")
    try:
        assert worker.ensure_connected()
        assert getattr(worker.driver, "settings", None) == {32: 1.0, 30: 255.0}
        with stack.ctx.db.session() as s:
            row = s.get(Device, "sim-laser")
            assert row is not None
            assert row.state != "error", row.state_reason
            assert "None" not in (row.state_reason or "")
    finally:
        worker.stop_driving()
