"""Staff commands for a running machine (pause, resume, cancel, stop, start, frame).

The web records intent here; the device worker that drives the machine picks it up within a
poll (about a second; a laser stop is watched more often) and carries it out. Commands are a
Redis list per device, so a command sent while the worker is busy is not lost.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import redis

from fabqueue.queue.names import control_key

COMMANDS = frozenset({"pause", "resume", "cancel", "stop", "start", "frame", "reset",
                      "bed_cleared", "test"})


def send(conn: redis.Redis, device_id: str, command: str, **data: Any) -> None:
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command}")
    payload = json.dumps({"command": command, "at": time.time(), **data})
    pipe = conn.pipeline()
    pipe.rpush(control_key(device_id), payload)
    pipe.expire(control_key(device_id), 3600)
    pipe.execute()


def take(conn: redis.Redis, device_id: str, timeout_s: float = 0) -> dict[str, Any] | None:
    """The next command, waiting up to ``timeout_s`` (0: don't wait)."""
    if timeout_s > 0:
        item = conn.blpop([control_key(device_id)], timeout=timeout_s)
        raw = item[1] if item else None
    else:
        raw = conn.lpop(control_key(device_id))
    return json.loads(raw) if raw else None


def reply_key(device_id: str, nonce: str) -> str:
    return f"fabqueue:reply:{device_id}:{nonce}"


def reply(conn: redis.Redis, device_id: str, nonce: str, **data: Any) -> None:
    """The device worker's answer to a command that waits for one (a connection test)."""
    conn.set(reply_key(device_id, nonce), json.dumps(data), ex=60)


def ask(conn: redis.Redis, device_id: str, command: str, timeout_s: float = 6.0,
        **data: Any) -> dict[str, Any] | None:
    """Send a command and wait for the device worker's reply (None: no worker answered)."""
    import secrets

    nonce = secrets.token_hex(8)
    send(conn, device_id, command, nonce=nonce, **data)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        raw = conn.get(reply_key(device_id, nonce))
        if raw:
            return json.loads(raw)
        time.sleep(0.1)
    return None


def alive_key(device_id: str) -> str:
    return f"fabqueue:worker-alive:{device_id}"


def beat(conn: redis.Redis, device_id: str, ttl_s: int = 10) -> None:
    """The device worker says it is there (every loop; gone ``ttl_s`` after it stops)."""
    conn.set(alive_key(device_id), str(os.getpid()), ex=ttl_s)


def worker_alive(conn: redis.Redis, device_id: str) -> bool:
    return bool(conn.exists(alive_key(device_id)))
