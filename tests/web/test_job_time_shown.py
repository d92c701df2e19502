"""The job page shows the estimate made at upload until the job is sliced, then PrusaSlicer's
own figure (issue 20: residents plan their day on it)."""

from __future__ import annotations

import re

from fabqueue.store.models import Job
from fabqueue.web.pages.render import fmt_duration
from tests.conftest import Stack
from tests.helpers import analysed, cube_stl


def shown_time(page: str) -> tuple[str | None, str]:
    found = re.search(r'<dd id="estimate-time"( data-source="slicer")?>([^<]*)</dd>', page)
    assert found, "the job page shows no time"
    return found.group(1), found.group(2)


def test_the_sliced_time_replaces_the_estimate(stack: Stack) -> None:
    with stack.client() as c:
        headers = stack.token(c, stack.user("resident"))
        job = analysed(c, headers, "cube.stl", cube_stl())
        estimate = job["analysis"]["estimated_seconds"]
        assert estimate > 0
        source, text = shown_time(c.get(f"/jobs/{job['id']}", headers=headers).text)
        assert source is None and text == fmt_duration(estimate)

        sliced = estimate + 7 * 3600 + 60  # unmistakably not the estimate
        with stack.ctx.db.session() as s:
            row = s.get(Job, job["id"])
            assert row is not None
            row.slice_result = {"ok": True, "estimated_seconds": sliced, "filament_g": 4.2}
        source, text = shown_time(c.get(f"/jobs/{job['id']}", headers=headers).text)
        assert source and text == fmt_duration(sliced) != fmt_duration(estimate)
        api = c.get(f"/api/jobs/{job['id']}", headers=headers).json()
        assert api["slicing"]["estimated_seconds"] == sliced
        assert api["analysis"]["estimated_seconds"] == estimate  # the upload's stays on record
