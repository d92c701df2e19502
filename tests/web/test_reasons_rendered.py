"""Reasons a worker or driver writes are stored as a code and parameters and shown in the
reader's language: the API (``*_text``, ``*_code``), the job page and its history."""

from __future__ import annotations

from fastapi.testclient import TestClient

from fabqueue.core.reasons import N_, decode, reason
from fabqueue.i18n import gettext
from fabqueue.store.models import Device
from tests.conftest import Stack
from tests.helpers import analysed


def test_an_invalid_job_reads_in_russian_with_its_code(stack: Stack) -> None:
    with stack.client() as c:
        headers = stack.token(c, stack.user("resident"))
        job = analysed(c, headers, "flat.stl", b"solid x\nendsolid x\n")
        assert job["status"] == "invalid"
        stored = stack.job(job["id"]).status_reason
        assert decode(stored) is not None, stored  # a code, not prose
        ru = c.get(f"/api/jobs/{job['id']}", headers={**headers, "Accept-Language": "ru"}).json()
        assert ru["status_reason_code"] == decode(stored).code  # type: ignore[union-attr]
        assert ru["status_reason"] == job["status_reason"]  # English stays for scripts
        assert ru["status_reason_text"] != ru["status_reason"]
        assert any("а" <= ch <= "я" for ch in ru["status_reason_text"].lower())
        page = c.get(f"/jobs/{job['id']}", headers={**headers, "Accept-Language": "ru"}).text
        assert ru["status_reason_text"].split(":")[0] in page.replace("&#39;", "'")
        assert "fq:" not in page and '"code"' not in page
        events = c.get(f"/api/jobs/{job['id']}/events",
                       headers={**headers, "Accept-Language": "lt"}).json()
        why = [e for e in events if e["why_code"]]
        assert why and why[-1]["why_text"] != why[-1]["why"]


def test_a_device_reason_reads_in_lithuanian(stack: Stack) -> None:
    stored = reason("stopped_answering", N_("the machine stopped answering"))
    with stack.ctx.db.session() as s:
        d = s.get(Device, "mk4-1")
        assert d is not None
        before = d.state_reason
        d.state_reason = stored
    try:
        with stack.client() as c:
            headers = {**stack.token(c, stack.user("staff")), "Accept-Language": "lt"}
            out = c.get("/api/devices/mk4-1", headers=headers).json()
            assert out["state_reason"] == "the machine stopped answering"
            assert out["state_reason_text"] == gettext("lt", "the machine stopped answering")
            assert out["state_reason_text"] != out["state_reason"]
            page = c.get("/staff/machines?site=kc", headers=headers).text
            assert out["state_reason_text"] in page and "fq:" not in page
    finally:
        with stack.ctx.db.session() as s:
            s.get(Device, "mk4-1").state_reason = before  # type: ignore[union-attr]


def test_a_typed_reason_is_shown_as_written(client: TestClient, stack: Stack) -> None:
    from fabqueue.web.present import reason_fields

    out = reason_fields("why", "Per didelis", "ru")
    assert out == {"why": "Per didelis", "why_text": "Per didelis", "why_code": None}


def test_live_events_carry_the_reason_in_the_subscribers_language() -> None:
    from fabqueue.web.api.events import readable

    stored = reason("stopped_by_staff", N_("stopped by staff"))
    out = readable({"job": 1, "to": "cancelled", "reason": stored}, "ru")
    assert out["reason"] == "stopped by staff"
    assert out["reason_text"] == gettext("ru", "stopped by staff") != "stopped by staff"
    assert readable({"job": 1}, "ru") == {"job": 1}
