"""The staff machine board (issue 11 item 4, issue 10 item 4): tiles by state, only the
buttons that make sense, names and reasons in the reader's language, roles' start pages."""

from __future__ import annotations

import re
import time

from fabqueue.core.reasons import N_, reason
from fabqueue.queue.laser_ops import FRAME_RUNNING
from fabqueue.store.inventory import apply
from fabqueue.store.models import Device
from fabqueue.web.pages import board
from fabqueue.web.pages.landing import start_page
from tests.conftest import Stack
from tests.helpers import login


def dev(**kw: object) -> Device:
    fields = {"id": "x", "kind": "printer", "state": "idle", "current_job_id": None,
              "state_reason": None, "confirmation": None, "temperatures": {}}
    fields.update(kw)
    return Device(**fields)


def test_only_the_buttons_that_make_sense_in_each_state() -> None:
    assert board.buttons_for(dev(state="idle"), False) == set()
    assert board.buttons_for(dev(kind="laser", state="awaiting_operator", current_job_id=3),
                             False) == set()  # no STOP on a laser that does nothing
    assert board.buttons_for(dev(kind="laser", state="awaiting_operator", current_job_id=3),
                             True) == {"stop"}  # … but while it traces a frame
    assert board.buttons_for(dev(state="busy", current_job_id=1), False) == {
        "pause", "cancel", "stop"}
    assert board.buttons_for(dev(state="paused", current_job_id=1), False) == {
        "resume", "cancel", "stop"}
    assert board.buttons_for(dev(state="needs_bed_clear", current_job_id=1), False) == {
        "bed_cleared"}
    assert board.buttons_for(dev(state="error"), False) == {"reset"}
    assert board.buttons_for(dev(state="offline"), False) == set()


def test_tile_names_temperatures_and_renders_reasons_and_the_confirmation_left() -> None:
    names = {"nozzle": "purkštukas", "bed": "stalas"}
    t = board.tile(dev(state="busy", current_job_id=1, temperatures={
        "tool0": {"actual": 210.4, "target": 215}, "bed": {"actual": 60, "target": 60}},
        state_reason=reason("x", N_("Tracing the frame with the laser off…")),
        confirmation={"expires": 1000.0}), lambda s: names.get(s, s), now=970.0)
    assert [n for n, _, _ in t.temperatures] == ["purkštukas", "stalas"]
    assert t.reason == "Tracing the frame with the laser off…"
    assert t.confirmation_left_s == 30
    assert board.tile(dev(kind="laser", state="awaiting_operator",
                          state_reason=FRAME_RUNNING), str).framing


def test_each_role_lands_on_its_own_start_page() -> None:
    assert start_page("staff") == "/staff/machines"
    assert start_page("admin") == "/staff/machines"
    assert start_page("teacher") == "/classes"
    assert start_page("resident") == "/"


def test_board_page_names_temperatures_hides_stop_and_shows_the_confirmation(
        stack: Stack, client) -> None:
    with stack.ctx.db.session() as s:
        apply(s, {"site": [{"id": "sb", "name": "board"}], "device": [
            {"id": "sb-las", "site": "sb", "kind": "laser", "driver": "grbl", "port": "/x",
             "bed_mm": (600, 400), "materials": ["plywood-3mm"]},
            {"id": "sb-pr", "site": "sb", "kind": "printer", "driver": "simulated",
             "build_volume_mm": (250, 210, 220), "materials": ["PLA"],
             "profile": "prusa_mk4"}]})
    with stack.ctx.db.session() as s:
        las = s.get(Device, "sb-las")
        las.state, las.current_job_id = "awaiting_operator", None
        las.confirmation = {"job": 1, "expires": time.time() + 60}
        pr = s.get(Device, "sb-pr")
        pr.state, pr.temperatures = "idle", {"tool0": {"actual": 25, "target": 0}}
    headers = login(stack, client, "staff", "sb")
    page = client.get("/staff/machines?site=sb", headers=headers)
    assert page.status_code == 200
    html = page.text
    temps = re.search(r"data-temperatures>(.*?)</span>", html, re.S)
    assert temps and "nozzle 25" in temps.group(1) and "tool0" not in temps.group(1)
    assert 'id="stop-sb-las"' not in html and 'id="stop-sb-pr"' not in html
    assert "data-countdown" in html and "state-awaiting_operator" in html
