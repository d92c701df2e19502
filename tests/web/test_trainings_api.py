"""Trainings and maintenance through the API and the staff page, and the periodic notices,
with a fake clock (``app.state.clock``, and the periodic task's time): who may grant what, records
kept, lapsing trainings and due tasks told once, the page in lt and ru."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from fabqueue.queue.periodic import _tasks
from fabqueue.queue.trainings_notify import notify_due
from fabqueue.store import inventory
from fabqueue.store.models import Notification, User
from fabqueue.store.trainings import lab_date
from tests.conftest import Stack
from tests.web.test_class_warnings import CSRF, page_login

# the fake clock starts at the tests' start: maintenance counts from the import, made now
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def lab(stack: Stack) -> Iterator[dict[str, str]]:
    """A site with a laser and a printer, a staff training and an open one, a fake clock."""
    tag = secrets.token_hex(3)
    site, laser, printer = f"tr{tag}", f"las-{tag}", f"pr-{tag}"
    with stack.ctx.db.session() as s:
        inventory.apply(s, {
            "site": [{"id": site, "name": f"test {site}"}],
            "device": [{"id": laser, "site": site, "kind": "laser", "driver": "simulated",
                        "bed_mm": (600, 400), "materials": ["plywood-3mm"]},
                       {"id": printer, "site": site, "kind": "printer",
                        "driver": "simulated", "build_volume_mm": (200, 200, 200),
                        "materials": ["PLA"], "profile": "prusa_mk4"}],
            "training": [{"id": f"open-{tag}", "name": {"lt": "Lazerio pagrindai",
                                                        "en": "Laser basics"},
                          "devices": [laser], "valid_days": 365},
                         {"id": f"staff-{tag}", "devices": [laser], "valid_days": 30,
                          "staff": True}],
            "maintenance": [{"id": "mirrors", "devices": [laser], "every_days": 10}]})
    stack.app.state.clock = lambda: NOW
    try:
        yield {"site": site, "laser": laser, "printer": printer, "open": f"open-{tag}",
               "staff": f"staff-{tag}"}
    finally:
        del stack.app.state.clock


def uid(stack: Stack, name: str) -> int:
    with stack.ctx.db.session() as s:
        return int(s.scalar(select(User.id).where(User.name == name)))


def test_who_grants_what_and_records_are_kept(stack: Stack, client, lab) -> None:
    staff, other_staff = stack.user("staff", lab["site"]), stack.user("staff", lab["site"])
    resident, admin = stack.user("resident"), stack.user("admin")
    s, s2 = stack.token(client, staff), stack.token(client, other_staff)
    r, a = stack.token(client, resident), stack.token(client, admin)
    rid, sid = uid(stack, resident), uid(stack, staff)
    url = f"/api/users/{rid}/trainings"
    # a resident grants nothing, not even to themself
    res = client.post(url, headers=r, json={"training": lab["open"]})
    assert res.status_code == 403 and res.json()["code"] == "staff_required"
    # any staff grant an open training; a staff training needs the granter to hold it
    assert client.post(url, headers=s, json={"training": lab["open"]}).status_code == 201
    res = client.post(url, headers=s, json={"training": lab["staff"]})
    assert res.status_code == 403 and res.json()["code"] == "training_required"
    assert client.post(f"/api/users/{sid}/trainings", headers=a,
                       json={"training": lab["staff"]}).status_code == 201  # admins may
    assert client.post(url, headers=s, json={"training": lab["staff"]}).status_code == 201
    assert client.post(url, headers=s, json={"training": "nope"}).status_code == 404
    future = (NOW.date() + timedelta(days=2)).isoformat()
    assert client.post(url, headers=s, json={"training": lab["open"],
                                             "on": future}).status_code == 422
    # revoked, never deleted: who and when stay on the record
    res = client.delete(f"{url}/{lab['open']}", headers=s2)
    assert res.status_code == 200, res.text
    rec = next(g for g in res.json() if g["training"] == lab["open"])
    assert rec["state"] == "revoked" and rec["revoked_by"] == uid(stack, other_staff)
    assert rec["granted_by"] == sid
    assert rec["granted_on"] == lab_date(NOW, stack.ctx.settings.timezone).isoformat()
    assert client.delete(f"{url}/{lab['open']}", headers=s2).status_code == 404
    mine = client.get(url, headers={**r, "Accept-Language": "lt"}).json()
    assert {g["training_name"] for g in mine} >= {"Lazerio pagrindai"}
    assert client.get(f"/api/users/{sid}/trainings", headers=r).status_code == 403


def test_staff_training_gates_staff_but_never_admins(stack: Stack, client, lab) -> None:
    staff, admin = stack.user("staff", lab["site"]), stack.user("admin")
    s, a = stack.token(client, staff), stack.token(client, admin)
    start = {"job": 999_999, "checklist": {}}
    res = client.post(f"/api/devices/{lab['laser']}/start", headers=s, json=start)
    assert res.status_code == 403 and res.json()["code"] == "training_required"
    res = client.post(f"/api/devices/{lab['laser']}/start", headers=a, json=start)
    assert res.status_code == 409 and "code" not in res.json()  # past the gate: the checklist


def test_maintenance_due_by_days_out_of_order_and_notices_told_once(stack: Stack, client,
                                                                     lab) -> None:
    staff = stack.user("staff", lab["site"])
    resident = stack.user("resident")
    s = stack.token(client, staff)
    rid = uid(stack, resident)
    # counting starts when the task was imported (now, really): move the fake clock on
    stack.app.state.clock = lambda: datetime.now(UTC) + timedelta(days=9.5)
    m = client.get(f"/api/devices/{lab['laser']}/maintenance", headers=s).json()
    assert m["tasks"][0]["state"] == "due_soon" and m["tasks"][0]["nearest"] == "days"
    stack.app.state.clock = lambda: datetime.now(UTC) + timedelta(days=10.5)
    m = client.get(f"/api/devices/{lab['laser']}/maintenance", headers=s).json()
    assert m["tasks"][0]["state"] == "due"
    res = client.post(f"/api/devices/{lab['laser']}/start", headers=s,
                      json={"job": 1, "checklist": {}})
    assert res.status_code == 409 and res.json()["code"] == "maintenance_due"
    # notices: staff of the site hear of the due task once, however often the loop runs
    later = datetime.now(UTC) + timedelta(days=10.5)
    notify_due(stack.ctx, later)
    notify_due(stack.ctx, later + timedelta(hours=1))
    sid = uid(stack, staff)
    with stack.ctx.db.session() as db:
        notes = list(db.scalars(select(Notification).where(
            Notification.user_id == sid, Notification.kind == "maintenance_due")))
    assert len([n for n in notes if n.params["device"] == lab["laser"]]) == 1
    done = client.post(f"/api/devices/{lab['laser']}/maintenance/mirrors/done", headers=s,
                       json={"note": "cleaned"})
    assert done.status_code == 200 and done.json()["tasks"][0]["state"] == "ok"
    # out of order and back; a resident may do neither
    r = stack.token(client, resident)
    assert client.post(f"/api/devices/{lab['laser']}/out-of-order", headers=r,
                       json={"reason": "x"}).status_code == 403
    res = client.post(f"/api/devices/{lab['laser']}/out-of-order", headers=s,
                      json={"reason": "tube cracked"})
    assert res.json()["out_of_order"]["reason"] == "tube cracked"
    assert client.delete(f"/api/devices/{lab['laser']}/out-of-order",
                         headers=s).json()["out_of_order"] is None
    assert client.delete(f"/api/devices/{lab['laser']}/out-of-order",
                         headers=s).status_code == 409
    # a training lapsing: 30 days before its end, then on its last day, once each
    on = lab_date(NOW, stack.ctx.settings.timezone) - timedelta(days=335)
    assert client.post(f"/api/users/{rid}/trainings", headers=s,
                       json={"training": lab["open"], "on": on.isoformat()}).status_code == 201
    noon = datetime.combine(on + timedelta(days=335), time(12),
                            tzinfo=ZoneInfo(stack.ctx.settings.timezone))  # the lab's noon
    for day in (noon, noon + timedelta(hours=2), noon + timedelta(days=29)):
        notify_due(stack.ctx, day)
    with stack.ctx.db.session() as db:
        told = [n.params["when"] for n in db.scalars(select(Notification).where(
            Notification.user_id == rid, Notification.kind == "training_expiring"))]
    assert told == ["soon", "today"]


@pytest.mark.parametrize("locale", ["lt", "ru"])
def test_staff_page_shows_machines_trained_people_and_lapsing(stack: Stack, client, lab,
                                                               locale: str) -> None:
    staff, resident = stack.user("staff", lab["site"]), stack.user("resident")
    s = stack.token(client, staff)
    on = (lab_date(NOW, stack.ctx.settings.timezone) - timedelta(days=340)).isoformat()
    client.post(f"/api/users/{uid(stack, resident)}/trainings", headers=s,
                json={"training": lab["open"], "on": on})
    client.post(f"/api/devices/{lab['printer']}/out-of-order", headers=s,
                json={"reason": "belt snapped"})
    page_login(stack, client, staff)
    page = client.get(f"/staff/trainings?site={lab['site']}",
                      headers={"Accept-Language": locale})
    assert page.status_code == 200
    words = {"lt": ("Mokymai ir priežiūra", "Netrukus baigsis", "Sugedęs"),
             "ru": ("Обучение и обслуживание", "Скоро истекает", "Неисправна")}[locale]
    for w in words:
        assert w in page.text, w
    assert resident in page.text and "belt snapped" in page.text
    # the grant form takes the page's own rules: a date to come is refused in words
    csrf = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
    res = client.post("/staff/trainings/grant", data={
        "csrf_token": csrf, "username": resident, "training": lab["open"],
        "on": (NOW.date() + timedelta(days=3)).isoformat()}, headers={"Accept-Language": locale})
    assert res.status_code == 422


@pytest.mark.parametrize("locale", ["lt", "ru"])
def test_machine_board_shows_due_soon_trained_and_lapsing(stack: Stack, client, lab,
                                                           locale: str) -> None:
    """The staff board itself (not only the trainings page) shows a task due soon, who is
    trained on each machine and whose training lapses soon (issue 17), in the reader's
    language; a machine nobody needs a training for shows none of it."""
    staff, resident = stack.user("staff", lab["site"]), stack.user("resident")
    s = stack.token(client, staff)
    on = (lab_date(NOW, stack.ctx.settings.timezone) - timedelta(days=340)).isoformat()
    assert client.post(f"/api/users/{uid(stack, resident)}/trainings", headers=s,
                       json={"training": lab["open"], "on": on}).status_code == 201
    stack.app.state.clock = lambda: NOW + timedelta(days=9, hours=12)  # mirrors: 95 %
    page_login(stack, client, staff)
    page = client.get(f"/staff/machines?site={lab['site']}",
                      headers={"Accept-Language": locale})
    assert page.status_code == 200
    laser = page.text.split(f'id="device-{lab["laser"]}"')[1].split("</article>")[0]
    printer = page.text.split(f'id="device-{lab["printer"]}"')[1].split("</article>")[0]
    words = {"lt": ("Priežiūra", "netrukus", "Netrukus baigsis"),
             "ru": ("Обслуживание", "скоро", "Скоро истекает")}[locale]
    assert 'data-task="mirrors"' in laser and "95%" in laser
    for w in words:
        assert w in laser, (w, laser)
    assert resident in laser
    assert 'data-part="care"' not in printer  # no training, no task, in order


def test_notices_run_in_the_periodic_loop() -> None:
    assert any(t.run is notify_due for t in _tasks())
