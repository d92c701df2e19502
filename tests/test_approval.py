"""Staff decisions and the owner's cancel, with every change in the job's audit log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Stack
from tests.helpers import analysed, cube_stl, english_client, insert_job, login


@pytest.fixture
def client(stack: Stack) -> TestClient:
    return english_client(stack)


@pytest.fixture(scope="module")
def people(stack: Stack) -> dict[str, str]:
    return {"resident": stack.user("resident"), "staff": stack.user("staff", "kc"),
            "staff_b": stack.user("staff", "school-b")}


@pytest.fixture(scope="module")
def headers(stack: Stack, people: dict[str, str]) -> dict[str, dict[str, str]]:
    with stack.client() as c:
        return {role: stack.token(c, name) for role, name in people.items()}


def events(client: TestClient, h: dict[str, str], job_id: int) -> list[dict]:
    r = client.get(f"/api/jobs/{job_id}/events", headers=h)
    assert r.status_code == 200
    return r.json()


def test_upload_analyse_approve_with_device_and_priority(
        client: TestClient, headers: dict[str, dict[str, str]], people: dict[str, str]) -> None:
    started = datetime.now(UTC) - timedelta(seconds=5)
    job = analysed(client, headers["resident"], "cube.stl", cube_stl(20))
    assert job["status"] == "awaiting_approval"
    r = client.post(f"/api/jobs/{job['id']}/approve", headers=headers["staff"],
                    json={"device": "mk4-2", "priority": 5})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] in ("approved", "slicing", "ready")
    assert out["pinned_device"] == "mk4-2" and out["priority"] == 5
    log = events(client, headers["resident"], job["id"])
    assert [e["to"] for e in log[:3]] == ["analyzing", "awaiting_approval", "approved"]
    approved = log[2]
    assert approved["who"] == people["staff"] and approved["from"] == "awaiting_approval"
    assert datetime.fromisoformat(approved["at"]) >= started
    assert log[0]["who"] == people["resident"] and log[0]["action"] == "uploaded"
    assert log[1]["who"] is None  # the analysis did it, not a person
    # approving twice is a conflict, in words
    again = client.post(f"/api/jobs/{job['id']}/approve", headers=headers["staff"])
    assert (again.status_code == 409 and "approved" in again.json()["detail"]) or \
        again.json()["detail"]


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"device": "no-such"}, 422, "no-such"),
    ({"device": "ender-a1"}, 422, "another site"),
    ({"priority": 99}, 422, "priority"),
])
def test_approve_with_a_bad_pin_is_refused(stack: Stack, client: TestClient,
                                           headers: dict[str, dict[str, str]],
                                           people: dict[str, str], body: dict, status: int,
                                           words: str) -> None:
    job_id = insert_job(stack, people["resident"], "kc", "awaiting_approval")
    r = client.post(f"/api/jobs/{job_id}/approve", headers=headers["staff"], json=body)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]
    assert stack.job(job_id).status == "awaiting_approval"


def test_approval_of_a_job_that_fits_nothing_is_refused(stack: Stack, client: TestClient,
                                                        headers: dict[str, dict[str, str]],
                                                        people: dict[str, str]) -> None:
    huge = analysed(client, headers["resident"], "huge.stl", cube_stl(400))
    assert huge["status"] == "awaiting_approval" and huge["analysis"]["fits"] == []
    r = client.post(f"/api/jobs/{huge['id']}/approve", headers=headers["staff"])
    assert r.status_code == 409
    assert "400" in r.json()["detail"]


def test_reject_needs_a_reason(stack: Stack, client: TestClient,
                               headers: dict[str, dict[str, str]],
                               people: dict[str, str]) -> None:
    job_id = insert_job(stack, people["resident"], "kc", "awaiting_approval")
    for body in ({}, {"reason": ""}, {"reason": "   "}):
        r = client.post(f"/api/jobs/{job_id}/reject", headers=headers["staff"], json=body)
        assert r.status_code == 422, body
        assert r.json()["detail"]
    assert stack.job(job_id).status == "awaiting_approval"
    r = client.post(f"/api/jobs/{job_id}/reject", headers=headers["staff"],
                    json={"reason": "Walls under 0.8 mm will not print"})
    assert r.status_code == 200
    assert r.json()["status"] == "rejected"
    assert r.json()["status_reason"] == "Walls under 0.8 mm will not print"
    last = events(client, headers["resident"], job_id)[-1]
    assert (last["from"], last["to"], last["why"]) == ("awaiting_approval", "rejected",
                                                       "Walls under 0.8 mm will not print")
    # a rejected job can be neither approved, rejected again nor cancelled
    for action, body in (("approve", None), ("reject", {"reason": "again"})):
        r = client.post(f"/api/jobs/{job_id}/{action}", headers=headers["staff"], json=body)
        assert r.status_code == 409, action
        assert "rejected" in r.json()["detail"]
    r = client.post(f"/api/jobs/{job_id}/cancel", headers=headers["resident"])
    assert r.status_code == 409


@pytest.mark.parametrize("status", ["analyzing", "awaiting_approval", "approved", "ready"])
def test_owner_cancels_until_it_runs(stack: Stack, client: TestClient,
                                     headers: dict[str, dict[str, str]],
                                     people: dict[str, str], status: str) -> None:
    job_id = insert_job(stack, people["resident"], "kc", status)
    r = client.post(f"/api/jobs/{job_id}/cancel", headers=headers["resident"])
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    last = events(client, headers["resident"], job_id)[-1]
    assert (last["from"], last["to"], last["who"]) == (status, "cancelled",
                                                       people["resident"])
    again = client.post(f"/api/jobs/{job_id}/cancel", headers=headers["resident"])
    assert again.status_code == 409
    assert "cancelled" in again.json()["detail"]


@pytest.mark.parametrize("status", ["running", "done", "invalid", "failed"])
def test_owner_cannot_cancel_once_it_runs_or_ended(stack: Stack, client: TestClient,
                                                   headers: dict[str, dict[str, str]],
                                                   people: dict[str, str], status: str) -> None:
    job_id = insert_job(stack, people["resident"], "kc", status)
    r = client.post(f"/api/jobs/{job_id}/cancel", headers=headers["resident"])
    assert r.status_code == 409
    assert status in r.json()["detail"]
    assert stack.job(job_id).status == status


def test_staff_of_another_site_cannot_decide(stack: Stack, client: TestClient,
                                             headers: dict[str, dict[str, str]],
                                             people: dict[str, str]) -> None:
    job_id = insert_job(stack, people["resident"], "kc", "awaiting_approval")
    for action, body in (("approve", None), ("reject", {"reason": "no"}), ("cancel", None)):
        r = client.post(f"/api/jobs/{job_id}/{action}", headers=headers["staff_b"], json=body)
        assert r.status_code == 403, action
    assert stack.job(job_id).status == "awaiting_approval"
    assert [e["action"] for e in events(client, headers["staff"], job_id)] == []


def test_a_resident_cannot_approve_their_own_job(stack: Stack, client: TestClient,
                                                 headers: dict[str, dict[str, str]],
                                                 people: dict[str, str]) -> None:
    job_id = insert_job(stack, people["resident"], "kc", "awaiting_approval")
    r = client.post(f"/api/jobs/{job_id}/approve", headers=headers["resident"])
    assert r.status_code == 403
    assert "staff" in r.json()["detail"]


def test_staff_cancel_is_recorded_with_their_name(stack: Stack, client: TestClient,
                                                  headers: dict[str, dict[str, str]],
                                                  people: dict[str, str]) -> None:
    fresh = login(stack, client, "resident")
    job = analysed(client, fresh, "c.stl", cube_stl(11))
    r = client.post(f"/api/jobs/{job['id']}/cancel", headers=headers["staff"])
    assert r.status_code == 200
    last = events(client, fresh, job["id"])[-1]
    assert last["who"] == people["staff"] and last["to"] == "cancelled"
