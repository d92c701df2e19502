"""Issue 8, the web and account items: each test failed before its fix."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Stack, wait_for


def page_login(client: TestClient, name: str, password: str) -> str:
    """Sign in through the page form; returns the session's CSRF token."""
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = client.post("/login", data={"username": name, "password": password,
                                    "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303, r.text
    home = client.get("/")
    return re.search(r'name="csrf-token" content="([^"]+)"', home.text).group(1)  # type: ignore[union-attr]


# -- item 8: headers
@pytest.mark.parametrize("path", ["/login", "/api/health", "/api/jobs/1", "/static/fabqueue.js",
                                  "/no-such-page"])
def test_every_response_carries_the_security_headers(stack: Stack, path: str) -> None:
    with stack.client() as c:
        r = c.get(path)
    csp = r.headers["content-security-policy"]
    scripts = next(d for d in csp.split(";") if d.strip().startswith("script-src")).split()
    assert "'self'" in scripts and "'unsafe-inline'" not in scripts
    styles = next(d for d in csp.split(";") if d.strip().startswith("style-src")).split()
    assert "'unsafe-inline'" not in styles
    assert "frame-ancestors 'none'" in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] in ("same-origin", "no-referrer", "strict-origin")


def test_templates_have_no_inline_script_or_handler() -> None:
    from fabqueue.web.headers import TEMPLATES

    for page in TEMPLATES.glob("*.html"):
        text = page.read_text()
        assert not re.search(r"\son[a-z]+\s*=", text), page.name
        for m in re.finditer(r"<script([^>]*)>(.*?)</script>", text, re.S):
            attrs, body = m.groups()
            assert "src=" in attrs or 'type="importmap"' in attrs, (page.name, body[:60])


def test_session_cookie_is_secure_when_served_over_https(stack: Stack,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from fabqueue.web.app import create_app

    monkeypatch.setattr(stack.ctx.settings, "public_url", "https://lab.example.org")
    app = create_app(stack.ctx)
    name = stack.user("resident")
    with TestClient(app, base_url="https://testserver") as c:
        page = c.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        r = c.post("/login", data={"username": name, "password": stack.passwords[name],
                                   "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    assert "secure" in r.headers["set-cookie"].lower()


# -- item 13: CSRF token only in a header or form field
def test_csrf_token_in_the_query_string_is_refused(stack: Stack) -> None:
    from tests.helpers import insert_job

    name = stack.user("resident")
    job = insert_job(stack, name, "kc", "awaiting_approval")
    with stack.client() as c:
        token = page_login(c, name, stack.passwords[name])
        r = c.post(f"/api/jobs/{job}/cancel?csrf_token={token}")
        assert r.status_code == 403, r.text
        assert stack.job(job).status == "awaiting_approval"
        page = c.get("/")
        assert "csrf_token=" not in page.text  # not in any action URL
        r = c.post(f"/api/jobs/{job}/cancel", headers={"X-CSRF-Token": token})
        assert r.status_code == 200, r.text


def test_the_no_script_upload_form_sends_its_token_as_a_field(stack: Stack) -> None:
    from tests.helpers import cube_stl

    name = stack.user("resident")
    with stack.client() as c:
        token = page_login(c, name, stack.passwords[name])
        files = {"file": ("cube.stl", cube_stl(10), "model/stl")}
        r = c.post(f"/submit?csrf_token={token}", data={"material": "PLA"}, files=files,
                   follow_redirects=False)
        assert r.status_code == 403
        r = c.post("/submit", data={"material": "PLA", "csrf_token": token}, files=files,
                   follow_redirects=False)
        assert r.status_code == 303, r.text
        assert re.search(r'name="csrf_token"', c.get("/").text.split('id="submit-form"')[1]
                         .split("</form>")[0])


# -- item 9: refused uploads leave nothing; a per-user storage limit
def _unique(prefix: bytes = b"solid x\n") -> tuple[bytes, str]:
    import hashlib
    import secrets

    data = prefix + secrets.token_hex(16).encode() + b"\nendsolid x\n"
    return data, hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(("name", "fields", "status"), [
    ("virus.exe", {"material": "PLA"}, 415),
    ("start.gcode", {"material": "PLA"}, 403),
    ("cube.stl", {}, 422),
    ("cube.stl", {"material": "PLA", "copies": "x"}, 422),
])
def test_a_refused_upload_leaves_nothing_in_the_store(stack: Stack, name: str,
                                                      fields: dict[str, str],
                                                      status: int) -> None:
    from tests.helpers import login

    data, sha = _unique()
    with stack.client() as c:
        headers = login(stack, c, "resident")
        r = c.post("/api/jobs", headers=headers, data=fields,
                   files={"file": (name, data, "application/octet-stream")})
    assert r.status_code == status, r.text
    assert not stack.ctx.files.path(sha).exists()


def test_per_user_storage_limit(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.helpers import cube_stl, login

    first = cube_stl(10)
    monkeypatch.setattr(stack.ctx.settings, "max_storage_per_user_bytes", len(first) + 100)
    with stack.client() as c:
        headers = login(stack, c, "resident")
        r = c.post("/api/jobs", headers=headers, data={"material": "PLA"},
                   files={"file": ("a.stl", first, "model/stl")})
        assert r.status_code == 201, r.text
        data, sha = _unique(b"solid y\n" + b" " * 200)
        r = c.post("/api/jobs", headers=headers, data={"material": "PLA"},
                   files={"file": ("b.stl", data, "model/stl")})
        assert r.status_code == 413, r.text
        assert "MB" in r.json()["detail"]
        assert not stack.ctx.files.path(sha).exists()
        other = login(stack, c, "resident")  # another person is not affected
        r = c.post("/api/jobs", headers=other, data={"material": "PLA"},
                   files={"file": ("c.stl", first, "model/stl")})
        assert r.status_code == 201, r.text


# -- item 4: bodies limited before they are read, authentication before any body
@pytest.fixture(scope="module")
def live_url(stack: Stack) -> Any:
    """The stack's app behind a real uvicorn (the test client reads a whole body up front,
    so only a real server shows whether FabQueue reads what it refuses)."""
    import socket
    import threading

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(stack.app, host="127.0.0.1", port=port,
                                           lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=30, what="uvicorn")
    yield ("127.0.0.1", port)
    server.should_exit = True
    thread.join(timeout=10)


def _flood(addr: tuple[str, int], path: str, headers: dict[str, str], total: int,
           chunked: bool) -> tuple[int, int]:
    """Send up to ``total`` bytes of JSON; returns (status, bytes the server let us send)."""
    import socket
    import threading

    sock = socket.create_connection(addr, timeout=60)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    head = {"Host": "x", "Content-Type": "application/json", **headers}
    head.update({"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(total)})
    sock.sendall((f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head.items())
                  + "\r\n").encode())
    sent = 0
    stop = threading.Event()

    def pump() -> None:
        nonlocal sent
        piece = b"[" + b"1," * (32 * 1024)
        try:
            while sent < total and not stop.is_set():
                data = (f"{len(piece):x}\r\n".encode() + piece + b"\r\n") if chunked else piece
                sock.sendall(data)
                sent += len(piece)
        except OSError:
            pass  # the server answered and closed: what we want

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    reply = b""
    while b"\r\n" not in reply:
        got = sock.recv(4096)
        if not got:
            break
        reply += got
    stop.set()
    sock.close()
    thread.join(timeout=30)
    return int(reply.split()[1]), sent


@pytest.mark.parametrize("chunked", [False, True])
def test_an_anonymous_80_mb_body_is_refused_unread(stack: Stack, live_url: Any,
                                                   chunked: bool) -> None:
    status, sent = _flood(live_url, "/api/jobs/1/reject", {}, 80 << 20, chunked)
    assert status == 401
    assert sent < 16 << 20  # the socket buffers, not the app, took what was sent


@pytest.mark.parametrize("chunked", [False, True])
def test_a_signed_in_80_mb_json_body_is_refused_at_the_limit(stack: Stack, live_url: Any,
                                                             chunked: bool) -> None:
    from tests.helpers import login

    with stack.client() as c:
        auth = login(stack, c, "staff", "kc")
    status, sent = _flood(live_url, "/api/jobs/1/reject", {"Authorization": auth["Authorization"]},
                          80 << 20, chunked)
    assert status == 413
    assert sent < 16 << 20


def test_a_small_json_body_still_works_and_the_limit_is_a_clear_413(stack: Stack) -> None:
    from tests.helpers import insert_job, login

    with stack.client() as c:
        staff = login(stack, c, "staff", "kc")
        resident = stack.user("resident")
        job = insert_job(stack, resident, "kc", "awaiting_approval")
        r = c.post(f"/api/jobs/{job}/reject", headers=staff,
                   json={"reason": "x" * (100 * 1024)})
        assert r.status_code == 413 and "KB" in r.json()["detail"]
        r = c.post(f"/api/jobs/{job}/reject", headers=staff, json={"reason": "too thin walls"})
        assert r.status_code == 200, r.text


# -- item 10: odd numbers and names are a 4xx with a detail, never a 500
BIG = "99999999999999999999"


def test_ids_and_numbers_beyond_64_bits_are_4xx(stack: Stack) -> None:
    from tests.helpers import login

    with TestClient(stack.app, raise_server_exceptions=False) as c:
        admin = login(stack, c, "admin")
        staff = login(stack, c, "staff", "kc")
        teacher = login(stack, c, "teacher", "kc")
        cases = [
            (c.get, f"/api/jobs/{BIG}", admin, {}),
            (c.get, f"/api/jobs?offset={BIG}", admin, {}),
            (c.get, f"/api/jobs?batch={BIG}", admin, {}),
            (c.get, f"/api/jobs/{BIG}/events", admin, {}),
            (c.post, f"/api/jobs/{BIG}/approve", staff, {"json": {}}),
            (c.post, f"/api/jobs/{BIG}/colours", staff, {"json": {"choice": {}}}),
            (c.get, f"/api/batches/{BIG}", admin, {}),
            (c.patch, f"/api/users/{BIG}", admin, {"json": {"locale": "en"}}),
            (c.get, f"/jobs/{BIG}", admin, {}),
            (c.get, f"/classes/{BIG}", teacher, {}),
            (c.post, "/api/devices/laser-1/start", staff,
             {"json": {"job": int(BIG), "checklist": {}}}),
            (c.put, "/api/sites/%7B", admin, {"json": {"name": "x"}}),
            (c.post, "/api/users", admin,
             {"json": {"name": "nobody-site", "password": "long-enough-1", "role": "teacher",
                       "site": ""}}),
            (c.post, "/api/jobs", admin,
             {"content": b"--xx\r\nContent-Disposition: form-data; name=\"fi",
              "headers": {"Content-Type": "multipart/form-data; boundary=xx"}}),
        ]
        for method, url, headers, kw in cases:
            extra = kw.pop("headers", {})
            r = method(url, headers={**headers, **extra}, **kw)
            assert 400 <= r.status_code < 500, (url, r.status_code, r.text)
            assert r.headers["content-type"].startswith("application/json"), (url, r.text)
            assert r.json()["detail"], url


def test_a_class_budget_that_is_not_a_number(stack: Stack) -> None:
    from tests.helpers import cube_stl, login

    with TestClient(stack.app, raise_server_exceptions=False) as c:
        teacher = login(stack, c, "teacher", "kc")
        r = c.post("/api/batches", headers=teacher,
                   data={"class_name": "7b", "material": "PLA", "budget_g": "²"},
                   files=[("files", ("A.stl", cube_stl(12), "model/stl"))])
    assert 400 <= r.status_code < 500 or r.status_code == 201, r.text
    if r.status_code == 201:
        assert r.json()["budget_g"] is None


def test_an_unexpected_error_is_a_logged_json_500(stack: Stack,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    from fastapi import FastAPI

    from fabqueue.web.app import install_last_resort

    app = FastAPI()
    install_last_resort(app)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("boom")

    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/boom")
    assert r.status_code == 500 and "detail" in r.json()
    assert "boom" in caplog.text


# -- item 5: sign-ins revoked on password change, disable and logout
def test_a_password_change_needs_the_old_one_and_revokes_tokens(stack: Stack) -> None:
    from tests.helpers import user_id

    name = stack.user("resident")
    uid = user_id(stack, name)
    with stack.client() as c:
        old = stack.token(c, name)
        browser = TestClient(stack.app)
        csrf = page_login(browser, name, stack.passwords[name])
        r = c.patch(f"/api/users/{uid}", headers=old, json={"password": "a-new-password-1"})
        assert r.status_code == 403, r.text
        r = c.patch(f"/api/users/{uid}", headers=old,
                    json={"password": "a-new-password-1", "current_password": "wrong-guess"})
        assert r.status_code == 403, r.text
        r = c.patch(f"/api/users/{uid}", headers=old,
                    json={"password": "a-new-password-1",
                          "current_password": stack.passwords[name]})
        assert r.status_code == 200, r.text
        stack.passwords[name] = "a-new-password-1"
        assert c.get("/api/me", headers=old).status_code == 401
        assert browser.get("/api/me", headers={"X-CSRF-Token": csrf}).status_code == 401
        assert c.get("/api/me", headers=stack.token(c, name)).status_code == 200


def test_disable_revokes_and_logout_kills_a_copied_cookie(stack: Stack) -> None:
    from tests.helpers import login, user_id

    name = stack.user("resident")
    with stack.client() as c:
        admin = login(stack, c, "admin")
        browser = TestClient(stack.app)
        csrf = page_login(browser, name, stack.passwords[name])
        copied = dict(browser.cookies)
        thief = TestClient(stack.app, cookies=copied)
        assert thief.get("/api/me").status_code == 200
        r = browser.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
        assert r.status_code == 303
        assert thief.get("/api/me").status_code == 401
        token = stack.token(c, name)
        r = c.patch(f"/api/users/{user_id(stack, name)}", headers=admin, json={"disabled": True})
        assert r.status_code == 200, r.text
        r = c.patch(f"/api/users/{user_id(stack, name)}", headers=admin,
                    json={"disabled": False})
        assert r.status_code == 200, r.text
        assert c.get("/api/me", headers=token).status_code == 401  # not back after re-enable


# -- item 12: account rules, the same everywhere
def test_an_admin_cant_disable_themselves_and_staff_need_a_site(stack: Stack) -> None:
    from tests.helpers import user_id

    admin = stack.user("admin")
    with stack.client() as c:
        headers = stack.token(c, admin)
        r = c.patch(f"/api/users/{user_id(stack, admin)}", headers=headers,
                    json={"disabled": True})
        assert r.status_code == 409, r.text
        assert c.get("/api/me", headers=headers).json()["disabled"] is False
        r = c.post("/api/users", headers=headers, json={"name": "siteless-staff",
                   "password": "long-enough-1", "role": "staff"})
        assert r.status_code == 422, r.text
        r = c.post("/api/users", headers=headers, json={"name": "siteless-staff",
                   "password": "long-enough-1", "role": "staff", "site": ""})
        assert r.status_code == 422, r.text
        resident = stack.user("resident")
        r = c.patch(f"/api/users/{user_id(stack, resident)}", headers=headers,
                    json={"role": "teacher"})
        assert r.status_code == 422, r.text
        r = c.patch(f"/api/users/{user_id(stack, resident)}", headers=headers,
                    json={"role": "teacher", "site": "kc"})
        assert r.status_code == 200 and r.json()["site"] == "kc", r.text


def test_the_admin_page_keeps_staff_at_a_site(stack: Stack) -> None:
    from tests.helpers import user_id

    admin = stack.user("admin")
    staff = stack.user("staff", "kc")
    with stack.client() as c:
        csrf = page_login(c, admin, stack.passwords[admin])
        r = c.post(f"/admin/users/{user_id(stack, staff)}",
                   data={"role": "staff", "site": "", "csrf_token": csrf},
                   follow_redirects=False)
        assert r.status_code == 422
    with stack.ctx.db.session() as s:
        from fabqueue.store.models import User

        assert s.get(User, user_id(stack, staff)).site_id == "kc"


# -- item 6: e-mail addresses
@pytest.mark.parametrize("email", ["a@example.org\r\nBcc: all@example.org",
                                   "a@example.org\nX: y", "not-an-address", "a@b@c"])
def test_an_email_address_with_header_tricks_is_422(stack: Stack, email: str) -> None:
    from tests.helpers import login, user_id

    name = stack.user("resident")
    with stack.client() as c:
        own = stack.token(c, name)
        r = c.patch(f"/api/users/{user_id(stack, name)}", headers=own, json={"email": email})
        assert r.status_code == 422, r.text
        admin = login(stack, c, "admin")
        r = c.post("/api/users", headers=admin, json={"name": f"m-{len(email)}",
                   "password": "long-enough-1", "role": "resident", "email": email})
        assert r.status_code == 422, r.text
        r = c.patch(f"/api/users/{user_id(stack, name)}", headers=own,
                    json={"email": "ona@example.org"})
        assert r.status_code == 200 and r.json()["email"] == "ona@example.org"


# -- item 14: machine events reach only who may see them
def test_device_events_are_filtered_by_site_and_ownership() -> None:
    from fabqueue.web.api.events import may_see

    progress = {"topic": "device:progress", "data": {"device": "p", "site": "kc", "job": 7}}
    staff_kc = {"id": 1, "role": "staff", "site": "kc"}
    staff_b = {"id": 2, "role": "staff", "site": "school-b"}
    owner = {"id": 3, "role": "resident", "site": None}
    stranger = {"id": 4, "role": "resident", "site": None}
    admin = {"id": 5, "role": "admin", "site": None}
    assert may_see(staff_kc, progress) and may_see(admin, progress)
    assert not may_see(staff_b, progress)
    assert may_see(owner, progress, lambda job: job == 7)
    assert not may_see(stranger, progress, lambda job: False)
    idle = {"topic": "device:state", "data": {"device": "p", "site": "kc", "job": None}}
    assert not may_see(owner, idle, lambda job: True)


# -- item 7: sign-in throttling
class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> _Clock:
    """A fresh throttle on a clock the test moves (no waiting out a real back-off)."""
    from fabqueue.web.throttle import LoginThrottle

    fake = _Clock()
    monkeypatch.setattr(stack.app.state, "login_throttle", LoginThrottle(clock=fake),
                        raising=False)
    return fake


def test_thirty_wrong_passwords_then_the_right_one_is_429_until_the_back_off_ends(
        stack: Stack, clock: _Clock) -> None:
    name = stack.user("resident")
    with stack.client() as c:
        codes = [c.post("/api/auth/token", data={"username": name, "password": f"guess-{i}"}
                        ).status_code for i in range(30)]
        assert set(codes) == {401, 429} and codes[-1] == 429
        r = c.post("/api/auth/token", data={"username": name,
                                            "password": stack.passwords[name]})
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) >= 1 and r.json()["detail"]
        page = c.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        r = c.post("/login", data={"username": name, "password": stack.passwords[name],
                                   "csrf_token": csrf}, follow_redirects=False)
        assert r.status_code == 429 and "retry-after" in r.headers
        clock.now += 301  # the back-off is capped: the account is never locked for good
        r = c.post("/api/auth/token", data={"username": name,
                                            "password": stack.passwords[name]})
        assert r.status_code == 200, r.text


def test_others_sign_in_during_a_flood_on_one_account(stack: Stack, clock: _Clock) -> None:
    from concurrent.futures import ThreadPoolExecutor

    victim, other = stack.user("resident"), stack.user("resident")
    with stack.client() as c:
        def guess(i: int) -> int:
            return c.post("/api/auth/token",
                          data={"username": victim, "password": f"guess-{i}"}).status_code

        with ThreadPoolExecutor(6) as pool:
            flood = [pool.submit(guess, i) for i in range(40)]
            r = c.post("/api/auth/token", data={"username": other,
                                                "password": stack.passwords[other]})
            assert r.status_code == 200, r.text
            assert c.get("/api/health").status_code == 200
            codes = [f.result() for f in flood]
        assert 429 in codes and 200 not in codes


def test_passwords_are_checked_in_the_bounded_hashing_pool(
        stack: Stack, clock: _Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from fabqueue.store import users

    seen: list[str] = []
    real = users.verify_password

    def spy(user: Any, password: str) -> bool:
        seen.append(threading.current_thread().name)
        return real(user, password)

    monkeypatch.setattr(users, "verify_password", spy)
    name = stack.user("resident")
    with stack.client() as c:
        assert c.post("/api/auth/token", data={"username": name,
                                               "password": stack.passwords[name]}
                      ).status_code == 200
    assert seen and all(n.startswith("fabqueue-argon2") for n in seen)


def test_the_account_page_changes_a_password_only_with_the_current_one(stack: Stack) -> None:
    name = stack.user("resident")
    with stack.client() as c:
        token = stack.token(c, name)
        browser = TestClient(stack.app)
        csrf = page_login(browser, name, stack.passwords[name])
        assert browser.get("/account").status_code == 200
        r = browser.post("/account/password", data={"current": "not-it", "new": "fresh-pass-1",
                                                     "csrf_token": csrf})
        assert r.status_code == 403
        r = browser.post("/account/password", data={"current": stack.passwords[name],
                                                    "new": "fresh-pass-1", "csrf_token": csrf},
                         follow_redirects=False)
        assert r.status_code == 303, r.text
        stack.passwords[name] = "fresh-pass-1"
        assert browser.get("/api/me").status_code == 200  # this browser stays signed in
        assert c.get("/api/me", headers=token).status_code == 401  # the old token doesn't


def test_a_refused_class_leaves_nothing_in_the_store(stack: Stack) -> None:
    from tests.helpers import login, zip_bytes

    model, sha = _unique()
    inner, inner_sha = _unique(b"solid z\n")
    with stack.client() as c:
        teacher = login(stack, c, "teacher", "kc")
        r = c.post("/api/batches", headers=teacher, data={"material": "PLA"},  # no class name
                   files=[("files", ("A.stl", model, "model/stl")),
                          ("files", ("more.zip", zip_bytes({"B.stl": inner}), "application/zip"))])
        assert r.status_code == 422, r.text
    assert not stack.ctx.files.path(sha).exists()
    r2 = None
    with stack.client() as c:
        teacher = login(stack, c, "teacher", "kc")
        r2 = c.post("/api/batches", headers=teacher, data={"material": "nope", "class_name": "x"},
                    files=[("files", ("more.zip", zip_bytes({"B.stl": inner}),
                                      "application/zip"))])
    assert r2.status_code == 422, r2.text
    assert not stack.ctx.files.path(inner_sha).exists()
