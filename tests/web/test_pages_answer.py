"""Every page answers every role without a server error, on the stack's own database.

The browser walks (test_every_page, test_browser, test_laser_board, test_live_text) run on
the embedded pass only: what they check (language, layout on a phone, live updates) does not
depend on the database. This walk is what runs the pages' queries again on PostgreSQL in the
external pass (``-m stack``): each page of each role, with a job, a class and a machine of its
site to show, in each language."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Stack
from tests.helpers import insert_batch, insert_job

# Not pages: the API's own documents, the icon, and a pickup token (a test of its own).
SKIP = {"/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc", "/favicon.ico",
        "/p/{token}"}


def page_paths(app: Any) -> list[str]:
    found: set[str] = set()
    for route in app.routes:
        contexts = (route.effective_route_contexts()
                    if hasattr(route, "effective_route_contexts") else [route])
        for r in contexts:
            path = getattr(r, "path", "")
            if "GET" in (getattr(r, "methods", None) or ()) and not path.startswith("/api"):
                found.add(path)
    return sorted(found - SKIP)


@pytest.mark.parametrize("locale", ["lt", "ru"])
def test_every_page_answers_every_role(stack: Stack, client: TestClient, locale: str) -> None:
    from fabqueue.store.models import Device

    teacher = stack.user("teacher")
    teacher_headers = stack.token(client, teacher)
    batch_id, (class_job,) = insert_batch(stack, teacher, "kc")
    with stack.ctx.db.session() as s:
        device_id = s.query(Device.id).filter(Device.site_id == "kc").first()[0]
    people = {"teacher": teacher_headers}
    for role in ("resident", "staff", "admin"):
        name = stack.user(role)
        headers = stack.token(client, name)
        people[role] = headers
        if role == "resident":
            job = insert_job(stack, name, "kc", "done")
    values = {"{job_id}": str(job), "{batch_id}": str(batch_id), "{device_id}": device_id}
    paths = page_paths(stack.app)
    assert {"/", "/jobs/{job_id}", "/staff", "/staff/machines", "/classes/{batch_id}"} <= set(
        paths)
    answers: dict[tuple[str, str], int] = {}
    for role, headers in people.items():
        for path in paths:
            url = path
            for key, value in values.items():
                url = url.replace(key, value)
            assert "{" not in url, f"no value for a parameter of {path}"
            r = client.get(url, headers={**headers, "Accept-Language": locale},
                           follow_redirects=False)
            answers[(role, url)] = r.status_code
    errors = {k: v for k, v in answers.items() if v >= 500}
    assert errors == {}
    # the walk reached the pages themselves, not only refusals
    assert answers[("staff", "/staff/machines")] == 200
    assert answers[("resident", f"/jobs/{job}")] == 200
    assert answers[("teacher", f"/classes/{batch_id}")] == 200
    assert class_job
