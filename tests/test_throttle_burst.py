"""Issue 19: the sign-in throttle decides atomically (a concurrent burst of wrong passwords
gets at most the allowed tries, the rest 429), and the current-password checks of a signed-in
person (``/account/password``, ``PATCH /api/users/{id}``) share that budget. The throttle's
clock is frozen (no back-off runs out while threads start on a loaded machine)."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from fabqueue.web.throttle import LoginThrottle
from tests.conftest import Stack

pytestmark = pytest.mark.stack

FREE = 5  # LoginThrottle's free failures per (account, address): one more try is let in


@pytest.fixture
def throttle(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> LoginThrottle:
    fresh = LoginThrottle(clock=lambda: 1000.0)
    monkeypatch.setattr(stack.app.state, "login_throttle", fresh, raising=False)
    return fresh


def test_a_burst_of_wrong_passwords_gets_at_most_the_allowed_tries(
        stack: Stack, throttle: LoginThrottle) -> None:
    name = stack.user("resident")
    start = threading.Barrier(14)
    with stack.client() as c:
        def guess(i: int) -> int:
            start.wait()
            return c.post("/api/auth/token", data={"username": name,
                                                   "password": f"wrong-{i}"}).status_code

        with ThreadPoolExecutor(14) as pool:
            codes = list(pool.map(guess, range(14)))
    assert set(codes) <= {401, 429}, codes
    assert codes.count(401) <= FREE + 1, codes
    assert codes.count(429) >= 14 - FREE - 1, codes


def test_current_password_checks_are_throttled(stack: Stack, throttle: LoginThrottle) -> None:
    name = stack.user("resident")
    with stack.client() as c:
        token = c.post("/api/auth/token", data={"username": name,
                                                "password": stack.passwords[name]}).json()
        h = {"Authorization": f"Bearer {token['access_token']}"}
        me = c.get("/api/me", headers=h).json()
        codes = [c.patch(f"/api/users/{me['id']}", headers=h, json={
            "password": "new-password-1", "current_password": f"wrong-{i}"}).status_code
            for i in range(FREE + 4)]
        assert codes[:FREE + 1] == [403] * (FREE + 1) and set(codes[FREE + 1:]) == {429}
        # the right password is throttled too until the back-off ends
        r = c.patch(f"/api/users/{me['id']}", headers=h, json={
            "password": "new-password-1", "current_password": stack.passwords[name]})
        assert r.status_code == 429 and "retry-after" in r.headers

    other = stack.user("resident")
    with stack.client() as c:
        page = c.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        r = c.post("/login", data={"username": other, "password": stack.passwords[other],
                                   "csrf_token": csrf}, follow_redirects=False)
        assert r.status_code in (302, 303), r.text
        page = c.get("/account")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        codes = [c.post("/account/password", data={
            "current": f"wrong-{i}", "new": "new-password-1", "csrf_token": csrf},
            follow_redirects=False).status_code for i in range(FREE + 4)]
        assert codes[:FREE + 1] == [403] * (FREE + 1) and set(codes[FREE + 1:]) == {429}
