"""Issue 21 + 19: erasing one's account (``DELETE /api/me``) asks for the current password
through the sign-in throttle, so a stolen session can't guess its way to the erasure. The
throttle's clock is frozen (no back-off runs out on a loaded machine)."""

from __future__ import annotations

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


def test_a_burst_of_wrong_passwords_on_erasure_gets_429(stack: Stack,
                                                         throttle: LoginThrottle) -> None:
    name = stack.user("resident")
    with stack.client() as c:
        h = stack.token(c, name)
        codes = [c.request("DELETE", "/api/me", headers=h,
                           json={"password": f"wrong-{i}"}).status_code
                 for i in range(FREE + 4)]
        assert codes[:FREE + 1] == [403] * (FREE + 1) and set(codes[FREE + 1:]) == {429}, codes
        # the right password waits for the back-off too, and the account stays
        r = c.request("DELETE", "/api/me", headers=h, json={"password": stack.passwords[name]})
        assert r.status_code == 429 and "retry-after" in r.headers
        assert c.get("/api/me", headers=h).json()["name"] == name
