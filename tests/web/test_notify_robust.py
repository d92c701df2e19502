"""Issue 8 item 6: one bad address or failure can't stop the e-mail loop (real SMTP server,
aiosmtpd on loopback; the event feed is a queue we fill, as the broker would)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine
from types import SimpleNamespace
from typing import Any

import pytest

from fabqueue.config import Settings
from fabqueue.web import notify
from tests.conftest import Stack
from tests.helpers import insert_job
from tests.web.conftest import Mailbox


class _Feed:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        return self.queue

    def unsubscribe(self, queue: object) -> None:
        pass


def _owner_with_email(stack: Stack, email: str) -> int:
    """A job whose owner has ``email`` written straight into the database (as an address
    saved before validation existed would be)."""
    from fabqueue.store.models import User
    from fabqueue.store.queries import get_user

    name = stack.user("resident")
    with stack.ctx.db.session() as s:
        user: User = get_user(s, name)
        user.email = email
    return insert_job(stack, name, "kc", "rejected")


def run_in_own_thread(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """asyncio.run in a thread of its own: Playwright's sync API, once a browser test has
    run in this process, leaves an event loop running on the main thread."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as e:  # re-raised below, in the test's thread
            failure.append(e)

    thread = threading.Thread(target=target, name="mail-loop-test")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def test_the_mail_loop_survives_a_bad_address_and_logs_it(
        stack: Stack, mailbox: tuple[Mailbox, int], caplog: pytest.LogCaptureFixture) -> None:
    box, port = mailbox
    bad = _owner_with_email(stack, "evil@example.org\r\nBcc: everyone@example.org")
    good = _owner_with_email(stack, "ona@example.org")
    settings = Settings(smtp_host="127.0.0.1", smtp_port=port, public_url="http://lab/")
    feed = _Feed()
    app = SimpleNamespace(state=SimpleNamespace(settings=settings, db=stack.ctx.db,
                                                broker=feed))

    async def run() -> None:
        task = asyncio.create_task(notify.mail_loop(app))
        for job in (bad, good):
            await feed.queue.put({"topic": "job:status", "data": {"job": job, "to": "rejected",
                                                                  "reason": "x"}})
        for _ in range(200):
            if any(m["To"] == "ona@example.org" for m in box.messages):
                break
            await asyncio.sleep(0.1)
        assert not task.done(), "the mail loop ended"
        await notify.stop(task)

    with caplog.at_level(logging.WARNING, logger="fabqueue.web.notify"):
        run_in_own_thread(run)
    assert any(m["To"] == "ona@example.org" for m in box.messages)
    assert not any("everyone@example.org" in str(m) for m in box.messages)
    assert f"'job': {bad}" in caplog.text
