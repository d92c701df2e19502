"""Warnings where decisions are made: the class board and the approval inbox list each job's
warnings, and approving a whole class holds back its flagged jobs unless staff tick that
they looked at them (then says how many were approved and held)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.conftest import Stack
from tests.helpers import cube_stl
from tests.test_batches import hand_in, settled_batch

CSRF = re.compile(r'name="csrf-token" content="([^"]+)"')


def page_login(stack: Stack, client: TestClient, name: str) -> str:
    """Sign in through the login form (cookies); returns the session's CSRF token."""
    token = CSRF.search(client.get("/login").text).group(1)  # type: ignore[union-attr]
    r = client.post("/login", data={"username": name, "password": stack.passwords[name],
                                    "csrf_token": token}, follow_redirects=False)
    assert r.status_code in (302, 303), r.text
    return CSRF.search(client.get("/").text).group(1)  # type: ignore[union-attr]


def test_flagged_class_jobs_are_listed_and_held_back(stack: Stack) -> None:
    teacher = stack.user("teacher", "kc")
    staff = stack.user("staff", "kc")
    with stack.client() as api:
        th = stack.token(api, teacher)
        r = hand_in(api, th, [("Ona.stl", cube_stl(10)),
                              ("Jonas.stl", cube_stl(20 / 25.4))], class_name="9c")
        assert r.status_code == 201, r.text
        batch = settled_batch(api, th, r.json()["id"])
        jobs = {j["student_name"]: j["id"] for j in batch["jobs"]}
    with stack.client() as web:
        page_login(stack, web, teacher)
        board = web.get(f"/classes/{batch['id']}", headers={"Accept-Language": "en"}).text
        assert board.count('class="warning"') >= 1 and "inch" in board
    with stack.client() as web:
        csrf = page_login(stack, web, staff)
        inbox = web.get("/staff").text
        assert f'id="flagged-{batch["id"]}"' in inbox
        flagged = inbox.split(f'id="flagged-{batch["id"]}"')[1].split("</div>")[0]
        assert f"#{jobs['Jonas']}" in flagged and f"#{jobs['Ona']}" not in flagged
        r = web.post(f"/staff/batches/{batch['id']}/approve", data={"csrf_token": csrf})
        assert r.status_code == 200
        assert 'id="batch-result"' in r.text and "1" in r.text.split('id="batch-result"')[1][:200]
        assert stack.job(jobs["Ona"]).status != "awaiting_approval"
        assert stack.job(jobs["Jonas"]).status == "awaiting_approval"  # held, still listed
        r = web.post(f"/staff/batches/{batch['id']}/approve",
                     data={"csrf_token": csrf, "include_flagged": "1"})
        assert r.status_code == 200
        assert stack.job(jobs["Jonas"]).status != "awaiting_approval"


def test_admin_adds_a_material_on_the_page_and_uploads_offer_it(stack: Stack) -> None:
    admin = stack.user("admin")
    with stack.client() as web:
        csrf = page_login(stack, web, admin)
        bad = web.post("/admin/materials", data={"csrf_token": csrf, "material_id": "ASA",
                                                 "kind": "filament", "price": "30"})
        assert bad.status_code == 422 and "density_g_cm3" in bad.text  # filament needs it
        r = web.post("/admin/materials", data={
            "csrf_token": csrf, "material_id": "ASA", "kind": "filament", "name": "ASA",
            "density": "1,07", "price": "30"})
        assert r.status_code == 200 and 'value="ASA"' in web.get("/").text
        listed = {m["id"]: m for m in web.get("/api/materials").json()}
        assert listed["ASA"]["density_g_cm3"] == 1.07 and listed["ASA"]["price_per_kg"] == 30
