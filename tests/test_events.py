"""Live updates over Server-Sent Events from a real uvicorn: a resident hears about their own
job and not about others'; staff hear machine progress."""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from tests.conftest import Stack
from tests.queue.helpers import cube_file, device_workers, new_site, printer, upload


@pytest.fixture(scope="module")
def live_url(stack: Stack) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(stack.app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def listen(url: str, headers: dict[str, str], out: queue.Queue, stop: threading.Event) -> None:
    with httpx.stream("GET", f"{url}/api/events", headers=headers, timeout=None) as r:
        event = None
        for line in r.iter_lines():
            if stop.is_set():
                return
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event:
                out.put((event, json.loads(line.split(":", 1)[1])))


def collect(url: str, headers: dict[str, str]) -> tuple[queue.Queue, threading.Event]:
    out: queue.Queue = queue.Queue()
    stop = threading.Event()
    threading.Thread(target=listen, args=(url, headers, out, stop), daemon=True).start()
    first = out.get(timeout=10)
    assert first[0] == "hello"
    return out, stop


def drain_until(q: queue.Queue, predicate, timeout: float = 30.0) -> list:  # type: ignore[no-untyped-def]
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            item = q.get(timeout=0.2)
        except queue.Empty:
            continue
        seen.append(item)
        if predicate(item):
            return seen
    raise AssertionError(f"no matching event in {timeout}s; saw {seen[-10:]}")


def test_status_changes_reach_the_owner_only_and_progress_reaches_staff(
        stack: Stack, client, live_url: str, tmp_path: Path) -> None:
    site = new_site(stack, [printer("ev-1", ["PLA"], simulated_speed=300)])
    owner, other = stack.user("resident"), stack.user("resident")
    staff = stack.user("staff", site)
    h_owner, h_other, h_staff = (stack.token(client, n) for n in (owner, other, staff))
    owner_q, stop1 = collect(live_url, h_owner)
    other_q, stop2 = collect(live_url, h_other)
    staff_q, stop3 = collect(live_url, h_staff)
    try:
        job = upload(client, h_owner, cube_file(tmp_path, 10), "PLA", site)
        drain_until(owner_q, lambda e: e[0] == "job:status" and e[1]["job"] == job
                    and e[1]["to"] == "awaiting_approval")
        assert client.post(f"/api/jobs/{job}/approve", headers=h_staff).status_code == 200
        with device_workers(stack, ["ev-1"]):
            drain_until(staff_q, lambda e: e[0] == "device:progress" and e[1]["device"] == "ev-1"
                        and e[1]["job"] == job)
            drain_until(owner_q, lambda e: e[0] == "job:status" and e[1]["job"] == job
                        and e[1]["to"] == "done", timeout=60)
        time.sleep(0.5)
        leaked = []
        while not other_q.empty():
            name, data = other_q.get()
            if name.startswith("job:"):
                leaked.append(data)
        assert leaked == []
    finally:
        for s in (stop1, stop2, stop3):
            s.set()
