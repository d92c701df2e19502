"""The web as people use it: ``python -m fabqueue serve --demo`` in a subprocess, driven by
Playwright through Debian's Chromium (no browser download)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from tests.conftest import EXTERNAL, free_port, own_database, own_redis

REPO = Path(__file__).resolve().parents[2]
SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples"
# the external pass runs at the same time as the embedded one: screenshots of its own
ARTIFACTS = REPO / "test-artifacts" / ("web-external" if EXTERNAL else "web")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PASSWORD_LINE = re.compile(r"^\s+(admin|staff|teacher|resident)\s+(\S+)\s+(\S+)\s*$")


@dataclass
class Server:
    url: str
    passwords: dict[str, str]
    data_dir: Path
    log: list[str] = field(default_factory=list)

    def token(self, name: str) -> str:
        r = httpx.post(f"{self.url}/api/auth/token",
                       data={"username": name, "password": self.passwords[name]},
                       timeout=30)  # Argon2 on a loaded 2-core machine: seconds, not ms
        r.raise_for_status()
        return str(r.json()["access_token"])

    def api(self, name: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30,
                            headers={"Authorization": f"Bearer {self.token(name)}"})


class Mailbox:
    """A real SMTP server on loopback (aiosmtpd) that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        raw = envelope.original_content or envelope.content  # type: ignore[attr-defined]
        self.messages.append(message_from_bytes(raw, policy=policy.default))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def wait_for(self, predicate: Callable[[EmailMessage], bool],
                 timeout_s: float = 20.0) -> EmailMessage:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for m in list(self.messages):
                if predicate(m):
                    return m
            time.sleep(0.1)
        raise AssertionError(f"no such e-mail; got {[m['Subject'] for m in self.messages]}")


@pytest.fixture(scope="session")
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    from aiosmtpd.controller import Controller

    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory,
           mailbox: tuple[Mailbox, int]) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("fabqueue-web")
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "FABQUEUE_SMTP_HOST": "127.0.0.1",
           "FABQUEUE_SMTP_PORT": str(mailbox[1]), "FABQUEUE_SMTP_FROM": "lab@fabqueue.test",
           "FABQUEUE_PUBLIC_URL": f"http://127.0.0.1:{port}",
           # the browser tests wait for verdicts with UI timeouts while other tests' jobs
           # run: two workers always, as before serve started helpers on demand (the
           # helpers themselves: tests/test_serve.py)
           "FABQUEUE_WARM_WORKERS": "2"}
    for var in ("REDIS_URL", "DATABASE_URL", "FABQUEUE_DATA_DIR"):
        env.pop(var, None)
    # the external pass serves from PostgreSQL and this machine's Redis
    env.update(own_database("web-server"), **own_redis(14))
    proc = subprocess.Popen(
        [sys.executable, "-m", "fabqueue", "serve", "--demo", "--port", str(port),
         "--data-dir", str(data)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    srv = Server(f"http://127.0.0.1:{port}", {}, data)
    assert proc.stdout is not None
    # The demo prints each user's password once; read them before anything else.
    deadline = time.monotonic() + 60
    while len(srv.passwords) < 4 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        srv.log.append(line)
        if m := PASSWORD_LINE.match(line):
            srv.passwords[m.group(2)] = m.group(3)
    assert len(srv.passwords) == 4, "demo passwords not printed:\n" + "".join(srv.log)

    def drain() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            srv.log.append(line)

    threading.Thread(target=drain, daemon=True).start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{srv.url}/api/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, "server exited:\n" + "".join(srv.log)
        time.sleep(0.2)
    else:
        pytest.fail("server did not answer /api/health:\n" + "".join(srv.log))
    try:
        yield srv
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "server.log").write_text("".join(srv.log))


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail("Debian's chromium is missing in CI (scripts/setup.sh --test installs it)")
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def sample(name: str) -> Path:
    path = SAMPLES / name
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"sample {path} is missing in CI (shared/ should sit beside the clone)")
        pytest.skip(f"sample {name} not found: ../shared/samples is absent beside the repo")
    return path


CSP_VIOLATIONS: list[str] = []


def _watch_csp(message: object) -> None:
    text = str(message.text)  # type: ignore[attr-defined]
    if "Content Security Policy" in text:
        CSP_VIOLATIONS.append(text)


@pytest.fixture(autouse=True)
def no_csp_violations() -> Iterator[None]:
    """Every page a browser test opens runs under the strict policy without a violation
    (an inline script or handler left in a template shows up here)."""
    CSP_VIOLATIONS.clear()
    yield
    assert CSP_VIOLATIONS == []


def login(browser: object, server: Server, name: str, *, locale: str = "en",
          **context_args: object) -> object:
    """A fresh browser context signed in as ``name`` (its Accept-Language is ``locale``)."""
    ctx = browser.new_context(locale=locale, **context_args)  # type: ignore[attr-defined]
    page = ctx.new_page()
    page.on("console", _watch_csp)  # type: ignore[attr-defined]
    page.goto(f"{server.url}/login")
    page.fill("#username", name)
    page.fill("#password", server.passwords[name])
    page.click("form[action='/login'] button[type=submit]")
    # each role lands on its own start page (fabqueue/web/pages/landing.py)
    from fabqueue.web.pages.landing import start_page

    role = {"admin": "admin", "staff": "staff", "teacher": "teacher"}.get(name, "resident")
    page.wait_for_url(f"{server.url}{start_page(role)}")
    return page


def shot(page: object, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]
