"""Notifications through Apprise to real receivers on this machine: its ``json://`` to an
HTTP server the test runs and ``mailto://`` to the test SMTP server; each message in its
reader's language, a class's job told to its teacher without the pupil's name, quiet hours
holding messages until morning, a dead channel retried with back-off and shown to admins,
never in the way of the change it is about."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from fabqueue.notify import outbox, sender
from fabqueue.store.jobs import change_status
from fabqueue.store.models import Device, Job, Site
from fabqueue.store.models_pickup import Delivery, NotificationPrefs
from tests.conftest import Stack, free_port
from tests.helpers import insert_batch, insert_job, user_id
from tests.web.conftest import Mailbox

VILNIUS = ZoneInfo("Europe/Vilnius")


class Receiver:
    """An HTTP server on loopback keeping each JSON body Apprise posts to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                received.append(json.loads(self.rfile.read(size) or b"{}"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def about(self, job: int) -> list[dict[str, Any]]:
        return [b for b in self.bodies if f"#{job}" in b.get("message", "")
                or f"№{job}" in b.get("message", "")]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def site_with(stack: Stack, urls: list[str], quiet: str = "off") -> str:
    site = f"nt{secrets.token_hex(3)}"
    with stack.ctx.db.session() as s:
        s.add(Site(id=site, name=f"Lab {site}", apprise_urls=urls, quiet_hours=quiet))
    return site


def choose(stack: Stack, name: str, urls: list[str], events: list[str],
           locale: str | None = None) -> None:
    from fabqueue.store.models import User

    with stack.ctx.db.session() as s:
        s.add(NotificationPrefs(user_id=user_id(stack, name), apprise_urls=urls, events=events))
        if locale:
            s.get(User, user_id(stack, name)).locale = locale


def move(stack: Stack, job_id: int, target: str, reason: str | None = None) -> None:
    """A status change as the workers and the web make it (one commit)."""
    with stack.ctx.db.session() as s:
        change_status(s, s.get(Job, job_id), target, reason=reason)


def deliver(stack: Stack, now: datetime | None = None, **settings: Any) -> dict[str, int]:
    cfg = stack.ctx.settings.model_copy(update=settings)
    return sender.deliver_due(stack.ctx.db, cfg, now or datetime.now(UTC))


def rows(stack: Stack, job_id: int) -> list[Delivery]:
    with stack.ctx.db.session() as s:
        out = s.query(Delivery).filter_by(job_id=job_id).order_by(Delivery.id).all()
        s.expunge_all()
        return out


def test_a_class_job_tells_staff_and_then_its_teacher_in_their_languages_without_the_pupil(
        stack: Stack, receiver: Receiver) -> None:
    site = site_with(stack, [receiver.url])  # the lab's own channel, default language lt
    teacher = stack.user("teacher", site)
    choose(stack, teacher, [receiver.url], ["approved", "rejected"], locale="ru")
    _, (job,) = insert_batch(stack, teacher, site, jobs=1, status="analyzing")
    with stack.ctx.db.session() as s:
        s.get(Job, job).student_name = "Jonas Jonaitis"

    move(stack, job, "awaiting_approval")
    deliver(stack)
    [staff_msg] = receiver.about(job)
    assert staff_msg["message"] == f"Darbas #{job} ({site}) laukia patvirtinimo."
    assert staff_msg["title"] == "FabQueue: darbas laukia patvirtinimo"

    move(stack, job, "approved")
    deliver(stack)
    told = receiver.about(job)
    assert len(told) == 2
    assert told[1]["message"].startswith(f"Задание №{job} одобрено и ждёт станка.")
    everything = json.dumps(receiver.bodies, ensure_ascii=False)
    assert "Jonas" not in everything and "Jonaitis" not in everything
    assert "cube.stl" not in everything  # no file names (a pupil's name may be one)
    # sent once: a later run sends nothing again
    deliver(stack)
    assert len(receiver.about(job)) == 2
    assert all(d.state == "sent" for d in rows(stack, job))


def test_quiet_hours_hold_a_message_until_the_morning_in_the_labs_time_zone(
        stack: Stack, receiver: Receiver) -> None:
    site = site_with(stack, [receiver.url], quiet="21:00-08:00")
    resident = stack.user("resident")
    choose(stack, resident, [receiver.url], ["ready_for_pickup"])
    job = insert_job(stack, resident, site, "done")
    night = datetime(2026, 12, 8, 23, 10, tzinfo=VILNIUS)
    with stack.ctx.db.session() as s:
        outbox.publish(s, "ready_for_pickup", site=site, user_ids=[user_id(stack, resident)],
                       params={"job": job, "place": "A3"}, now=night.astimezone(UTC))
    [row] = rows(stack, job)
    held = row.not_before if row.not_before.tzinfo else row.not_before.replace(tzinfo=UTC)
    assert held.astimezone(VILNIUS) == datetime(2026, 12, 9, 8, 0, tzinfo=VILNIUS)
    deliver(stack, night.astimezone(UTC) + timedelta(minutes=30))
    deliver(stack, datetime(2026, 12, 9, 7, 59, tzinfo=VILNIUS))
    assert receiver.about(job) == []
    deliver(stack, datetime(2026, 12, 9, 8, 1, tzinfo=VILNIUS))
    [msg] = receiver.about(job)
    assert f"#{job}" in msg["message"] and "A3" in msg["message"]


def test_a_dead_channel_is_retried_with_backoff_then_shown_to_admins_and_never_blocks(
        stack: Stack, client: TestClient, receiver: Receiver) -> None:
    dead = f"json://127.0.0.1:{free_port()}/"  # nothing listens there
    site = site_with(stack, [dead, receiver.url])
    job = insert_job(stack, stack.user("resident"), site, "analyzing")
    move(stack, job, "awaiting_approval")  # the change is made whatever the channels do
    assert stack.job(job).status == "awaiting_approval"
    now = datetime.now(UTC)
    deliver(stack, now)
    assert len(receiver.about(job)) == 1  # the good channel is not held up by the dead one
    [bad] = [d for d in rows(stack, job) if d.channel == dead]
    assert bad.state == "pending" and bad.attempts == 1 and bad.last_error
    first_retry = bad.not_before if bad.not_before.tzinfo else bad.not_before.replace(
        tzinfo=UTC)
    assert first_retry >= now + timedelta(seconds=59)
    deliver(stack, now + timedelta(seconds=30))  # not yet due: not tried
    [bad] = [d for d in rows(stack, job) if d.channel == dead]
    assert bad.attempts == 1
    t = now
    for _ in range(stack.ctx.settings.notify_attempts):
        t += timedelta(hours=2)
        deliver(stack, t)
    [bad] = [d for d in rows(stack, job) if d.channel == dead]
    assert bad.state == "failed" and bad.attempts == stack.ctx.settings.notify_attempts
    assert len(receiver.about(job)) == 1  # the good one was sent once only

    admin = stack.token(client, stack.user("admin"))
    listed = client.get("/api/notifications/failed", headers=admin)
    assert listed.status_code == 200, listed.text
    mine = [f for f in listed.json() if f["job"] == job]
    assert mine and mine[0]["state"] == "failed" and mine[0]["error"]
    assert mine[0]["event"] == "approval_needed"
    staff = stack.token(client, stack.user("staff", site))
    assert client.get("/api/notifications/failed", headers=staff).status_code == 403


def test_mailto_channels_and_the_users_own_address_reach_the_smtp_server(
        stack: Stack, mailbox: tuple[Mailbox, int], monkeypatch: pytest.MonkeyPatch) -> None:
    box, port = mailbox
    tag = secrets.token_hex(3)
    site = site_with(stack, [f"mailto://127.0.0.1:{port}?from=lab@fabqueue.test"
                             f"&to=staff-{tag}@lab.test"])
    resident = stack.user("resident")
    with stack.ctx.db.session() as s:
        from fabqueue.store.models import User

        u = s.get(User, user_id(stack, resident))
        u.email, u.locale = f"ona-{tag}@example.lt", "lt"
    smtp = {"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_from": "lab@fabqueue.test"}
    monkeypatch.setattr(outbox, "_settings", stack.ctx.settings.model_copy(update=smtp))
    job = insert_job(stack, resident, site, "analyzing")
    move(stack, job, "awaiting_approval")
    move(stack, job, "approved")  # a user who never chose: the default events, by e-mail
    deliver(stack, **smtp)
    staff_mail = box.wait_for(lambda m: m["To"] == f"staff-{tag}@lab.test")
    plain = staff_mail.get_body(preferencelist=("plain",))  # Apprise sends text and HTML
    assert plain is not None and f"#{job}" in plain.get_content()
    owner_mail = box.wait_for(lambda m: m["To"] == f"ona-{tag}@example.lt")
    assert owner_mail["Subject"] == f"FabQueue: darbas #{job} patvirtintas"
    assert f"Darbas #{job} patvirtintas ir laukia įrenginio." in owner_mail.get_content()


def test_users_choose_their_channels_and_events_and_bad_ones_are_refused(
        stack: Stack, client: TestClient) -> None:
    resident = stack.token(client, stack.user("resident"))
    r = client.get("/api/me/notifications", headers=resident)
    assert r.status_code == 200 and "ready_for_pickup" in r.json()["events"]
    body = {"apprise_urls": ["ntfy://ntfy.sh/fabqueue-test-topic"],
            "events": ["ready_for_pickup", "rejected"]}
    r = client.put("/api/me/notifications", headers=resident, json=body)
    assert r.status_code == 200, r.text
    assert client.get("/api/me/notifications", headers=resident).json()["apprise_urls"] == \
        body["apprise_urls"]
    for bad in ({"apprise_urls": ["not a url"], "events": []},
                {"apprise_urls": [], "events": ["everything"]},
                # a resident can't make the lab's server call into its own network
                {"apprise_urls": ["json://127.0.0.1:6379/"], "events": []},
                {"apprise_urls": ["json://localhost/"], "events": []},
                {"apprise_urls": ["x" * 5000], "events": []},
                {"apprise_urls": [f"ntfy://ntfy.sh/t{i}" for i in range(50)], "events": []}):
        r = client.put("/api/me/notifications", headers=resident, json=bad)
        assert r.status_code == 422, (bad, r.text)
    assert client.get("/api/me/notifications", headers=resident).json()["events"] == [
        "rejected", "ready_for_pickup"]


def test_a_machine_error_reaches_the_sites_staff_channel_with_its_reason(
        stack: Stack, receiver: Receiver) -> None:
    from fabqueue.core.reasons import N_, reason
    from fabqueue.queue.device_worker import DeviceWorker
    from tests.queue.helpers import new_site, printer

    site = new_site(stack, [printer(f"err-{secrets.token_hex(2)}", ["PLA"])])
    with stack.ctx.db.session() as s:
        row = s.get(Site, site)
        row.apprise_urls, row.quiet_hours = [receiver.url], "off"
        device = s.query(Device).filter_by(site_id=site).one().id
    worker = DeviceWorker(stack.ctx, device)
    assert worker.lease.acquire()
    try:
        why = reason("test_error", N_("Alarm {code}: {text}"), code=9, text="thermal runaway")
        worker._set_device(state="error", state_reason=why)
        worker._set_device(state="error", state_reason=why)  # still the same error: once
    finally:
        worker.lease.release()
    deliver(stack)
    got = [b for b in receiver.bodies if device in b.get("message", "")]
    assert len(got) == 1, receiver.bodies
    assert "thermal runaway" in got[0]["message"] and "praneša apie klaidą" in got[0]["message"]
