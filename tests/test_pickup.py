"""Pickup (issue 18): from the cleared bed to a shelf place, a label with a QR code, the
hand-over by that code, a class collected at once, reminders and the disposal list on a
faked clock. Through the API on the real stack (SQLite, or PostgreSQL on the external pass)."""

from __future__ import annotations

import io
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pypdfium2
import zxingcpp
from fastapi.testclient import TestClient
from pypdf import PdfReader

from fabqueue.notify import DEFAULT_EVENTS
from fabqueue.queue import periodic
from fabqueue.queue import pickup as service
from fabqueue.store.models import Device, Job, Site
from fabqueue.store.models_pickup import Delivery, NotificationPrefs, Pickup
from tests.conftest import Stack
from tests.helpers import insert_batch, insert_job, user_id


def lab(stack: Stack, places: list[str] | None = None) -> str:
    """A site of this test's own, with shelf places and a printer waiting for its bed."""
    site = f"pk{secrets.token_hex(3)}"
    with stack.ctx.db.session() as s:
        s.add(Site(id=site, name=f"Lab {site}", places=places or ["A1", "A2", "B1"]))
        s.flush()
        s.add(Device(id=f"{site}-mk4", site_id=site, kind="printer", driver="simulated",
                     size_mm=[250, 210, 220], materials=["PLA"], state="offline"))
    return site


def finish_on_printer(stack: Stack, site: str, job_id: int) -> str:
    with stack.ctx.db.session() as s:
        d = s.get(Device, f"{site}-mk4")
        d.state, d.current_job_id = "needs_bed_clear", job_id
        s.get(Job, job_id).device_id = d.id
    return f"{site}-mk4"


def deliveries(stack: Stack, job_id: int, event: str) -> list[Delivery]:
    with stack.ctx.db.session() as s:
        rows = s.query(Delivery).filter_by(job_id=job_id, event=event).all()
        s.expunge_all()
        return rows


def listens(stack: Stack, name: str, url: str = "json://127.0.0.1:9/") -> None:
    """The user's own channel (nothing answers on the discard port: these tests look at
    what is written, tests/notify at what arrives)."""
    with stack.ctx.db.session() as s:
        s.add(NotificationPrefs(user_id=user_id(stack, name), apprise_urls=[url],
                                events=list(DEFAULT_EVENTS)))


def pickup(stack: Stack, job_id: int) -> Pickup:
    with stack.ctx.db.session() as s:
        p = s.get(Pickup, job_id)
        s.expunge(p)
        return p


def test_a_cleared_bed_puts_the_part_on_the_next_free_place_and_tells_its_owner(
        stack: Stack, client: TestClient) -> None:
    site = lab(stack)
    staff = stack.user("staff", site)
    resident = stack.user("resident")
    h_staff, h_owner = stack.token(client, staff), stack.token(client, resident)
    listens(stack, resident)
    first = insert_job(stack, resident, site, "done")
    job = insert_job(stack, resident, site, "done")
    r = client.post(f"/api/jobs/{first}/pickup/place", headers=h_staff, json={"place": "A1"})
    assert r.status_code == 200, r.text  # a laser part: shelved without a bed to clear

    device = finish_on_printer(stack, site, job)
    r = client.post(f"/api/devices/{device}/bed-cleared", headers=h_staff, json={"job": job})
    assert r.status_code == 200, r.text
    got = client.get(f"/api/jobs/{job}", headers=h_owner).json()["pickup"]
    assert got["state"] == "waiting" and got["place"] is None and got["since"]
    assert "handover_url" not in got  # the owner never sees the hand-over code
    info = client.get(f"/api/jobs/{job}/pickup", headers=h_staff).json()
    assert info["suggested"] == "A2"  # A1 holds the first part
    assert info["places"] == ["A1", "A2", "B1"]

    assert client.post(f"/api/jobs/{job}/pickup/place", headers=h_staff,
                       json={"place": "Z9"}).status_code == 409
    assert client.post(f"/api/jobs/{job}/pickup/place", headers=h_owner,
                       json={"place": "A2"}).status_code == 403
    r = client.post(f"/api/jobs/{job}/pickup/place", headers=h_staff, json={"place": "A2"})
    assert r.status_code == 200, r.text
    assert client.get(f"/api/jobs/{job}", headers=h_owner).json()["pickup"]["place"] == "A2"
    told = deliveries(stack, job, "ready_for_pickup")
    assert [(d.user_id, d.params["place"], d.channel) for d in told] == [
        (user_id(stack, resident), "A2", "json://127.0.0.1:9/")]
    # a job still running has no part to shelve
    running = insert_job(stack, resident, site, "running")
    assert client.post(f"/api/jobs/{running}/pickup/place", headers=h_staff,
                       json={"place": "B1"}).status_code == 409


def test_the_label_is_62_mm_wide_with_a_qr_code_of_the_handover_url_and_no_name(
        stack: Stack, client: TestClient) -> None:
    site = lab(stack)
    staff = stack.user("staff", site)
    resident = stack.user("resident", name=f"Ona Petraitytė {secrets.token_hex(2)}")
    h_staff = stack.token(client, staff)
    job = insert_job(stack, resident, site, "done")
    client.post(f"/api/jobs/{job}/pickup/place", headers=h_staff, json={"place": "B1"})
    r = client.get(f"/api/jobs/{job}/label", headers=h_staff)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    token = pickup(stack, job).token
    assert len(token) >= 22  # token_urlsafe: ≥ 128 random bits

    page = PdfReader(io.BytesIO(r.content)).pages[0]
    width_mm = float(page.mediabox.width) / 72 * 25.4
    assert abs(width_mm - 62.0) < 0.5
    text = page.extract_text()
    assert f"#{job}" in text and "B1" in text
    assert datetime.now(UTC).date().isoformat()[:7] in text  # the date (lab's zone)
    assert "Ona" not in text and "Petraityt" not in text

    image = pypdfium2.PdfDocument(r.content)[0].render(scale=4).to_pil()
    codes = [c.text for c in zxingcpp.read_barcodes(image)]
    assert codes == [f"http://testserver/p/{token}"]

    owner = stack.token(client, resident)
    assert client.get(f"/api/jobs/{job}/label", headers=owner).status_code == 403


def test_staff_hand_the_part_over_by_its_code_and_who_and_when_are_kept(
        stack: Stack, client: TestClient) -> None:
    site = lab(stack)
    staff = stack.user("staff", site)
    other_staff = stack.user("staff", lab(stack))
    resident = stack.user("resident")
    job = insert_job(stack, resident, site, "done")
    h_staff = stack.token(client, staff)
    client.post(f"/api/jobs/{job}/pickup/place", headers=h_staff, json={"place": "A1"})
    token = pickup(stack, job).token

    assert client.post(f"/api/pickup/{token}",
                       headers=stack.token(client, resident)).status_code == 403
    assert client.post(f"/api/pickup/{token}",
                       headers=stack.token(client, other_staff)).status_code == 403
    assert client.post(f"/api/pickup/{'x' * 32}", headers=h_staff).status_code == 404
    assert client.post(f"/api/pickup/{'x' * 5000}", headers=h_staff).status_code == 404
    r = client.post(f"/api/pickup/{token}", headers=h_staff)
    assert r.status_code == 200, r.text
    assert r.json()["pickup"]["state"] == "collected"
    p = pickup(stack, job)
    assert p.collected_by_id == user_id(stack, staff) and p.collected_at is not None
    again = client.post(f"/api/pickup/{token}", headers=h_staff)  # a double tap
    assert again.status_code == 200 and again.json()["pickup"]["state"] == "collected"
    assert pickup(stack, job).collected_at == p.collected_at
    # its place is free again
    assert client.get(f"/api/jobs/{job}/pickup", headers=h_staff).json()["suggested"] == "A1"


def test_a_teacher_collects_the_whole_class_in_one_action(stack: Stack,
                                                          client: TestClient) -> None:
    site = lab(stack)
    teacher = stack.user("teacher", site)
    other = stack.user("teacher", site)
    staff = stack.user("staff", site)
    batch, jobs = insert_batch(stack, teacher, site, jobs=3, status="done")
    with stack.ctx.db.session() as s:
        s.get(Job, jobs[2]).status = "failed"  # nothing to hand over
    client.post(f"/api/jobs/{jobs[0]}/pickup/place", headers=stack.token(client, staff),
                json={"place": "A1"})
    assert client.post(f"/api/batches/{batch}/collected",
                       headers=stack.token(client, other)).status_code == 403
    r = client.post(f"/api/batches/{batch}/collected", headers=stack.token(client, teacher))
    assert r.status_code == 200, r.text
    assert sorted(r.json()["collected"]) == sorted(jobs[:2])
    for j in jobs[:2]:
        assert pickup(stack, j).state == "collected"
        assert pickup(stack, j).collected_by_id == user_id(stack, teacher)
    r = client.post(f"/api/batches/{batch}/collected", headers=stack.token(client, teacher))
    assert r.json()["collected"] == []  # collected once
    assert client.post("/api/batches/999999999/collected",
                       headers=stack.token(client, teacher)).status_code == 404


class Clock:
    def __init__(self, stack: Stack) -> None:
        self.ctx = stack.ctx
        self.last: dict[str, datetime] = {}

    def run(self, at: datetime) -> dict[str, Any]:
        return periodic.run_due(self.ctx, at, self.last)


def test_reminders_then_uncollected_then_disposal_on_a_faked_clock(
        stack: Stack, client: TestClient) -> None:
    site = lab(stack)
    staff = stack.user("staff", site)
    resident = stack.user("resident")
    h_staff = stack.token(client, staff)
    listens(stack, resident)
    job = insert_job(stack, resident, site, "done")
    kept = insert_job(stack, resident, site, "done")
    for j, place in ((job, "A1"), (kept, "A2")):
        client.post(f"/api/jobs/{j}/pickup/place", headers=h_staff, json={"place": place})
    since = service.aware(pickup(stack, job).since)
    clock = Clock(stack)

    def reminders() -> int:
        return len(deliveries(stack, job, "pickup_reminder"))

    clock.run(since + timedelta(days=2, hours=23))
    assert reminders() == 0 and pickup(stack, job).reminders_sent == 0
    clock.run(since + timedelta(days=3, minutes=1))
    assert pickup(stack, job).reminders_sent == 1 and reminders() == 1
    clock.run(since + timedelta(days=3, minutes=20))  # a later run: nothing new
    clock.last.clear()
    clock.run(since + timedelta(days=3, minutes=20))  # a doubled run: nothing new
    assert reminders() == 1
    client.post(f"/api/pickup/{pickup(stack, kept).token}", headers=h_staff)
    clock.run(since + timedelta(days=10, minutes=30))
    assert pickup(stack, job).reminders_sent == 2 and reminders() == 2
    assert client.post(f"/api/jobs/{job}/pickup/disposed", headers=h_staff).status_code == 409

    clock.run(since + timedelta(days=21, minutes=40))
    assert pickup(stack, job).state == "uncollected"
    assert pickup(stack, kept).state == "collected"  # handed over: never uncollected
    assert [d.user_id for d in deliveries(stack, job, "uncollected")] == [
        user_id(stack, resident)]
    listed = client.get("/api/pickup?state=uncollected", headers=h_staff).json()
    assert [p["job"] for p in listed] == [job] and listed[0]["place"] == "A1"
    r = client.post(f"/api/jobs/{job}/pickup/disposed", headers=h_staff)
    assert r.status_code == 200, r.text
    p = pickup(stack, job)
    assert p.state == "disposed" and p.disposed_by_id == user_id(stack, staff)
    assert client.get("/api/pickup?state=uncollected", headers=h_staff).json() == []
    clock.run(since + timedelta(days=40))
    assert reminders() == 2


def signed_in(stack: Stack, name: str, locale: str = "en") -> TestClient:
    """A browser-like client signed in through the page form, in ``locale``."""
    from fabqueue.store.models import User

    with stack.ctx.db.session() as s:
        s.get(User, user_id(stack, name)).locale = locale
    browser = TestClient(stack.app)
    form = browser.get("/login").text
    csrf = form.split('name="csrf_token" value="')[1].split('"')[0]
    r = browser.post("/login", data={"username": name, "password": stack.passwords[name],
                                     "csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return browser


def test_the_pages_shelve_hand_over_and_tell_the_owner_where_in_each_language(
        stack: Stack, client: TestClient) -> None:
    site = lab(stack, ["A1", "A2"])
    staff = stack.user("staff", site)
    resident = stack.user("resident")
    job = insert_job(stack, resident, site, "done")
    device = finish_on_printer(stack, site, job)
    h_staff = stack.token(client, staff)
    assert client.post(f"/api/devices/{device}/bed-cleared", headers=h_staff,
                       json={"job": job}).status_code == 200

    shelf = signed_in(stack, staff, "lt").get("/staff/pickup")
    assert shelf.status_code == 200
    assert f'id="place-{job}-suggested"' in shelf.text and "Padėti į A1" in shelf.text
    assert f'data-post="/api/jobs/{job}/pickup/place"' in shelf.text
    client.post(f"/api/jobs/{job}/pickup/place", headers=h_staff, json={"place": "A1"})

    expected = {"lt": "Galima atsiimti vietoje A1 nuo", "ru": "Можно забрать на месте A1 с",
                "en": "Ready for pickup at A1 since"}
    for locale, text in expected.items():
        page = signed_in(stack, resident, locale).get(f"/jobs/{job}")
        assert page.status_code == 200 and text in page.text, locale
        assert "/p/" not in page.text  # the owner never gets the hand-over code

    token = pickup(stack, job).token
    owner_view = signed_in(stack, resident, "ru").get(f"/p/{token}")
    assert owner_view.status_code == 200 and "handover-confirm" not in owner_view.text
    staff_view = signed_in(stack, staff, "ru").get(f"/p/{token}")
    assert 'id="handover-confirm"' in staff_view.text and "Ждёт выдачи с" in staff_view.text
    stranger = signed_in(stack, stack.user("resident")).get(f"/p/{token}")
    assert stranger.status_code == 403
    assert signed_in(stack, staff).get("/p/nothing-here").status_code == 404
    assert signed_in(stack, resident).get("/staff/pickup").status_code == 403


def test_the_account_page_saves_channels_and_events_and_explains_a_refusal(
        stack: Stack) -> None:
    name = stack.user("resident")
    browser = signed_in(stack, name, "lt")
    page = browser.get("/account/notifications")
    assert page.status_code == 200 and "Mano darbą galima atsiimti" in page.text
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    r = browser.post("/account/notifications", data={
        "csrf_token": csrf, "apprise_urls": "ntfy://ntfy.sh/fabqueue-x\n",
        "event_ready_for_pickup": "1", "event_pickup_reminder": "1"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    with stack.ctx.db.session() as s:
        prefs = s.get(NotificationPrefs, user_id(stack, name))
        assert prefs.apprise_urls == ["ntfy://ntfy.sh/fabqueue-x"]
        assert prefs.events == ["ready_for_pickup", "pickup_reminder"]
    bad = browser.post("/account/notifications", data={
        "csrf_token": csrf, "apprise_urls": "http://127.0.0.1:6379/"})
    assert bad.status_code == 422 and "FabQueue negali naudoti šio pranešimų adreso" in bad.text
    assert browser.post("/account/notifications", data={"apprise_urls": ""}).status_code in (
        400, 403)
