"""Statistics that mean the same for simulated and real machines, and a chart that keeps
its shape (it scales into its box on a phone)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from fabqueue.store.inventory import apply
from fabqueue.store.models import Job, User
from fabqueue.web.pages.stats import bar_chart, month_rows
from tests.conftest import Stack
from tests.helpers import insert_job

NOW = datetime(2026, 12, 16, tzinfo=UTC)  # half of December has passed


def test_simulated_machines_count_in_the_time_of_the_machine_they_stand_for(
        stack: Stack) -> None:
    with stack.ctx.db.session() as s:
        apply(s, {"site": [{"id": "st", "name": "stats"}], "device": [
            {"id": "st-sim", "site": "st", "kind": "printer", "driver": "simulated",
             "build_volume_mm": [200, 200, 200], "materials": ["PLA"],
             "simulated_speed": 10},
            {"id": "st-real", "site": "st", "kind": "printer", "driver": "octoprint",
             "url": "http://127.0.0.1:9", "build_volume_mm": [200, 200, 200],
             "materials": ["PLA"]}]})  # no device workers run in this stack
    owner = stack.user("resident")
    # Estimated 1000 s each (insert_job): the simulated one took 110 s of wall time at
    # 10× (1100 s of printer time), the real one 900 s, and one failed after 1800 s.
    runs = [("st-sim", "done", 110.0), ("st-real", "done", 900.0),
            ("st-real", "failed", 1800.0)]
    for device, status, seconds in runs:
        jid = insert_job(stack, owner, "st", status)
        with stack.ctx.db.session() as s:
            job = s.get(Job, jid)
            job.device_id, job.actual_seconds = device, seconds
            job.created_at = datetime(2026, 12, 3, tzinfo=UTC)
    with stack.ctx.db.session() as s:
        admin = s.query(User).filter(User.role == "admin").first()
        row = next(r for r in month_rows(s, admin, now=NOW) if r.site == "st")
    assert row.jobs == 3 and row.done == 2 and row.failed == 1
    assert abs(row.hours - (1100 + 900 + 1800) / 3600) < 1e-6
    assert abs(row.estimate_ratio - 1.0) < 1e-6  # median of 1.1 and 0.9, not of 0.11
    # Two machines, 15 days (360 h) of December so far, not the whole month.
    assert row.machines == 2
    assert abs(row.utilisation - (3800 / 3600) / (2 * 360)) < 1e-9


def test_the_chart_keeps_its_shape_and_labels_months_in_the_language() -> None:
    from fabqueue.web.pages.stats import MonthRow

    one = bar_chart([MonthRow("kc", "2026-11", jobs=3)], "Jobs", "ru")
    many = bar_chart([MonthRow("kc", f"2026-{m:02d}", jobs=m * 7) for m in range(1, 13)],
                     "Jobs", "lt")
    for svg in (one, many):
        assert 'viewBox="0 0 600 240"' in svg
    assert "нояб" in one.lower() and ">3<" in one
    assert len(re.findall(r"<rect ", many)) == 12 and ">84<" in many  # December's value
    ticks = [int(t) for t in re.findall(r'text-anchor="end">(\d+)<', many)]
    assert ticks[0] == 0 and ticks[-1] >= 84 and len(ticks) <= 7
