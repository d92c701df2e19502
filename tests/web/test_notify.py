"""Notifications: in the web, and by e-mail through a real SMTP server (aiosmtpd) on
loopback, in the reader's language."""

from __future__ import annotations

import time
from typing import Any

import trimesh

from fabqueue.config import Settings
from fabqueue.web import notify
from tests.web.conftest import Mailbox, Server, login


def test_an_email_is_composed_in_the_readers_language_and_sent_over_smtp(
        mailbox: tuple[Mailbox, int]) -> None:
    box, port = mailbox
    for locale, expected in (("lt", "Darbas #41 atmestas: per didelis"),
                             ("ru", "Задание №41 отклонено: per didelis")):
        msg = notify.compose("job_rejected", job_id=41, file_name="vaza.stl",
                             reason="per didelis", locale=locale, to=f"{locale}@example.lt",
                             sender="lab@fabqueue.test", base_url="http://lab.example/")
        notify.send(Settings(smtp_host="127.0.0.1", smtp_port=port), msg)
        got = box.wait_for(lambda m, loc=locale: m["To"] == f"{loc}@example.lt")
        body = got.get_content()
        assert expected in body
        assert "http://lab.example/jobs/41" in body
        assert "vaza.stl" in got["Subject"] and "41" in got["Subject"]


def test_a_rejected_job_reaches_its_owner_by_email_and_on_the_web(
        browser: Any, server: Server, mailbox: tuple[Mailbox, int]) -> None:
    box, _ = mailbox
    with server.api("resident") as c:
        uid = c.get("/api/me").json()["id"]
        assert c.patch(f"/api/users/{uid}", json={"email": "rezidentas@example.lt",
                                                  "locale": "ru"}).status_code == 200
        stl = bytes(trimesh.creation.box(extents=(12, 12, 12)).export(file_type="stl"))
        job = c.post("/api/jobs", files={"file": ("lamp.stl", stl)},
                     data={"material": "PLA"}).json()
        for _ in range(200):
            if c.get(f"/api/jobs/{job['id']}").json()["status"] == "awaiting_approval":
                break
            time.sleep(0.1)
    with server.api("staff") as c:
        r = c.post(f"/api/jobs/{job['id']}/reject", json={"reason": "Per didelis <b>!</b>"})
        assert r.status_code == 200, r.text
    mail = box.wait_for(lambda m: m["To"] == "rezidentas@example.lt")
    assert f"№{job['id']}" in mail["Subject"] and "lamp.stl" in mail["Subject"]
    assert f"Задание №{job['id']} отклонено: Per didelis <b>!</b>" in mail.get_content()
    assert f"{server.url}/jobs/{job['id']}" in mail.get_content()

    page = login(browser, server, "resident")
    page.goto(f"{server.url}/notifications")
    assert f"Задание №{job['id']} отклонено: Per didelis <b>!</b>" in page.inner_text("main")
    assert page.locator("#notif-count").count() == 1
    page.click("form[action='/notifications/read'] button")
    assert page.locator("#notif-count").count() == 0
    with server.api("resident") as c:
        c.patch(f"/api/users/{uid}", json={"locale": "en"})
    page.context.close()
