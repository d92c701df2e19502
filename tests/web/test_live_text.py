"""Text that a live update writes reads as completely as the page the server rendered: after
the machine's progress events have changed the time left on the staff board and on the
resident's job page, neither shows ``undefined``, ``NaN``, ``null`` or ``None`` (issue 19:
"45 undefined" in lt and ru, because the page's unit words lacked the one for seconds)."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.web.conftest import Server, login, shot
from tests.web.test_browser import _Sleeper, api_upload, box_stl, wait_status

pytestmark = pytest.mark.browser

LEAKS = re.compile(r"(?<!\w)(undefined|NaN|null|None)(?!\w)")
# A second subscriber in the page counts the progress events it receives, so the test knows
# a live update (not only the server's rendering) has passed over the page.
COUNT_PROGRESS = """() => {
  window.fqProgress = 0;
  const s = new EventSource('/api/events');
  s.addEventListener('device:progress', () => { window.fqProgress += 1; });
}"""


def switch_language(page: Any, locale: str) -> None:
    page.select_option("#lang-select", locale)
    page.wait_for_load_state("load")
    page.wait_for_selector(f"html[lang={locale}]", state="attached")


def after_live_updates(page: Any, selector: str) -> str:
    """The text of ``selector`` once two progress events have reached the page and the
    page's own handler has written the time left."""
    page.evaluate(COUNT_PROGRESS)
    page.wait_for_function("() => window.fqProgress >= 2", timeout=60_000, polling=250)
    page.wait_for_function(
        f"() => document.querySelector('{selector} [data-time-left]')?.dataset.seconds",
        timeout=10_000, polling=250)
    page.wait_for_timeout(1_200)  # one countdown tick after the update, as a person sees it
    return str(page.inner_text("body"))


@pytest.mark.parametrize("locale", ["lt", "ru"])
def test_time_left_after_a_live_update_has_no_undefined(
        browser: Any, server: Server, locale: str) -> None:
    job = api_upload(server, "resident", f"live-{locale}.stl", box_stl(14))
    wait_status(server, "resident", job["id"], ("awaiting_approval",), _Sleeper(), 60_000)
    with server.api("staff") as c:
        assert c.post(f"/api/jobs/{job['id']}/approve", json={}).status_code == 200
    staff = login(browser, server, "staff")
    resident = login(browser, server, "resident")
    try:
        staff.goto(f"{server.url}/staff/machines?site=kc")
        switch_language(staff, locale)
        with server.api("staff") as c:
            for _ in range(480):
                d = c.get(f"/api/jobs/{job['id']}").json()
                if d["status"] == "running" and d["device"]:
                    break
                staff.wait_for_timeout(250)
        assert d["status"] == "running", f"the job never ran: {d}"
        device = d["device"]
        staff.goto(f"{server.url}/staff/machines?site=kc")
        board = after_live_updates(staff, f"#device-{device}")
        shot(staff, f"live-board-{locale}")
        assert not LEAKS.findall(board), f"staff board in {locale}: {LEAKS.findall(board)}"

        resident.goto(f"{server.url}/jobs/{job['id']}")
        switch_language(resident, locale)
        if resident.get_attribute("#job-status", "data-status") == "running":
            page = after_live_updates(resident, f'[data-device-live="{device}"]')
            shot(resident, f"live-job-{locale}")
            assert not LEAKS.findall(page), f"job page in {locale}: {LEAKS.findall(page)}"
        else:  # a fast machine finished first: the board above has shown the live text
            page = str(resident.inner_text("body"))
            assert not LEAKS.findall(page), f"job page in {locale}: {LEAKS.findall(page)}"
    finally:
        for page in (staff, resident):  # the language is remembered per user: give it back
            switch_language(page, "en")
            page.context.close()
        free_the_printer(server, job["id"])


def free_the_printer(server: Server, job_id: int) -> None:
    """The served demo is shared by the browser tests: stop this print and clear its bed,
    so the next test finds the printer free instead of waiting for a bed nobody clears."""
    with server.api("staff") as c:
        device = c.get(f"/api/jobs/{job_id}").json()["device"]
        if not device:
            return
        c.post(f"/api/devices/{device}/cancel")
        for _ in range(240):
            if c.get(f"/api/devices/{device}").json()["state"] == "needs_bed_clear":
                r = c.post(f"/api/devices/{device}/bed-cleared", json={"job": job_id})
                assert r.status_code in (200, 202), r.text
                return
            time.sleep(0.25)
