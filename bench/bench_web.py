"""Web benchmark: pages and GET /api/jobs with 10,000 jobs, and SSE fan-out to 200 clients.

A real uvicorn serving ``create_app`` (one process, as ``fabqueue serve`` runs it) over
SQLite and the embedded Redis; clients are httpx on the same machine. Each request's time is
measured at the client (so it includes queueing behind the other 19 clients), and reported
as p50/p95 and as a ratio to the bare ``/api/health`` under the same load.

    .venv/bin/python bench/bench_web.py            # print the figures
    .venv/bin/python bench/bench_web.py --write    # and replace "## Web" in bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi import Depends, Request
from sqlalchemy.orm import Session

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fabqueue.store.models import User  # noqa: E402  (annotations FastAPI must resolve)

JOBS = 10_000
CLIENTS = 20
REQUESTS_PER_CLIENT = 25
SSE_CLIENTS = 200
STATUS_MIX = [("done", 0.55), ("awaiting_approval", 0.1), ("approved", 0.05),
              ("rejected", 0.1), ("cancelled", 0.1), ("failed", 0.1)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(data_dir: Path, redis_url: str) -> dict[str, str]:
    """Demo sites, users and machines, then 10,000 jobs straight into the database."""
    import io

    from sqlalchemy import insert, select

    from fabqueue.config import Settings
    from fabqueue.demo import seed_demo
    from fabqueue.queue.context import Context
    from fabqueue.store.models import Job, User

    ctx = Context(Settings(data_dir=data_dir, redis_url=redis_url))
    ctx.db.migrate()
    out = io.StringIO()
    seed_demo(ctx, echo=lambda m: out.write(m + "\n"))
    passwords = {}
    for line in out.getvalue().splitlines()[1:]:
        _, name, password = line.split()
        passwords[name] = password
    rng = random.Random(5)
    statuses = [s for s, _ in STATUS_MIX]
    weights = [w for _, w in STATUS_MIX]
    now = datetime.now(UTC)
    with ctx.db.session() as s:
        owners = list(s.scalars(select(User.id)))
        rows = []
        for i in range(JOBS):
            status = rng.choices(statuses, weights)[0]
            created = now - timedelta(minutes=JOBS - i)
            grams = round(rng.uniform(2, 80), 1)
            rows.append({
                "kind": "print", "status": status, "owner_id": rng.choice(owners),
                "site_id": "kc", "material_id": "PLA", "quality": "normal", "copies": 1,
                "file_sha256": f"{i:064x}", "file_name": f"part-{i}.stl", "file_format": "stl",
                "size_bytes": 10_000, "priority": 0, "created_at": created,
                "updated_at": created,
                "analysis": {"ok": True, "errors": [], "warnings": [], "material_g": grams,
                             "estimated_seconds": grams * 250, "cost": grams * 0.02,
                             "volume_cm3": grams / 1.24, "bbox_mm": [20, 20, 20],
                             "fits": ["mk4-1", "mk4-2"]},
                "actual_seconds": grams * 260 if status == "done" else None,
            })
        s.execute(insert(Job), rows)
        s.commit()
    return passwords


def serve(data_dir: Path, port: int) -> None:
    """Child process: the app under uvicorn, without workers (they would act on the jobs)."""
    import uvicorn

    from fabqueue.config import Settings
    from fabqueue.queue.context import Context, set_context
    from fabqueue.web.app import create_app

    ctx = Context(Settings(data_dir=data_dir, redis_url=os.environ["REDIS_URL"]))
    ctx.install_publisher()
    set_context(ctx)
    app = create_app(ctx)
    if os.environ.get("BENCH_SYNC_AUTH") == "1":
        override_auth_with_sync(app)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def override_auth_with_sync(app: Any) -> None:
    """Diagnosis only: ``deps.optional_user`` is ``async`` yet queries the database, so under
    more concurrent requests than the SQLite pool holds (5 + 10) it blocks the event loop in
    the pool's checkout while the connections' owners wait for that loop: a deadlock until
    the pool's 30 s timeout. The same function as a plain ``def`` runs in the threadpool.
    (GET only: this bench sends no changes, so the CSRF check is not needed here.)"""
    from itsdangerous import BadSignature, SignatureExpired

    from fabqueue.web import deps

    def optional_user(request: Request, token: str | None = Depends(deps.oauth2_scheme),
                      db: Session = Depends(deps.get_db)) -> User | None:
        uid = None
        if token:
            try:
                uid = int(deps.serializer(request).loads(token, max_age=deps.TOKEN_MAX_AGE_S)
                          ["uid"])
            except (BadSignature, SignatureExpired, KeyError, ValueError, TypeError):
                raise deps.ApiError(401, "Your sign-in has expired. Sign in again.") from None
        elif request.session.get("uid"):
            uid = int(request.session["uid"])
        user = db.get(User, uid) if uid is not None else None
        if user is not None:
            request.state.user = user
        return user

    app.dependency_overrides[deps.optional_user] = optional_user


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def load(base: str, path: str, headers: dict[str, str], cookies: httpx.Cookies
               ) -> tuple[list[float], int]:
    times: list[float] = []
    failures = 0

    async def client() -> None:
        nonlocal failures
        async with httpx.AsyncClient(base_url=base, headers=headers, cookies=cookies,
                                     timeout=40) as c:
            for _ in range(REQUESTS_PER_CLIENT):
                t0 = time.perf_counter()
                try:
                    r = await c.get(path)
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                times.append(time.perf_counter() - t0)
                if not ok:  # a stalled client stops: one stall is the finding
                    failures += 1
                    return

    async with httpx.AsyncClient(base_url=base, headers=headers, cookies=cookies,
                                 timeout=60) as warm:
        for _ in range(3):
            (await warm.get(path)).raise_for_status()  # one at a time: never stalls
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return times, failures


def browser_session(base: str, name: str, password: str) -> httpx.Cookies:
    with httpx.Client(base_url=base) as c:
        token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text)
        assert token
        r = c.post("/login", data={"username": name, "password": password,
                                   "csrf_token": token.group(1)})
        assert r.status_code == 303, r.text
        return c.cookies


async def sse_fanout(base: str, token: str, redis_url: str) -> dict[str, float]:
    """200 subscribers; one status change published; how long until each has it."""
    import redis

    from fabqueue.events import CHANNEL

    ready = asyncio.Event()
    connected = 0
    received: list[float] = []
    sent_at: list[float] = []
    limits = httpx.Limits(max_connections=SSE_CLIENTS + 10)

    async def subscriber(c: httpx.AsyncClient) -> None:
        nonlocal connected
        async with c.stream("GET", "/api/events",
                            headers={"Authorization": f"Bearer {token}"}) as r:
            event = None
            async for line in r.aiter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                    if event == "hello":
                        connected += 1
                        if connected == SSE_CLIENTS:
                            ready.set()
                elif line.startswith("data:") and event == "job:status":
                    received.append(time.perf_counter())
                    return

    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as c:
        tasks = [asyncio.create_task(subscriber(c)) for _ in range(SSE_CLIENTS)]
        with contextlib.suppress(TimeoutError):  # publish anyway: the report says how many
            await asyncio.wait_for(ready.wait(), 40)
        await asyncio.sleep(0.5)  # every subscriber is parked on its queue
        listening = connected
        conn = redis.Redis.from_url(redis_url)
        sent_at.append(time.perf_counter())
        conn.publish(CHANNEL, json.dumps({"topic": "job:status", "data": {
            "job": 1, "from": "approved", "to": "slicing", "owner": 1, "site": "kc"}}))
        done, pending = await asyncio.wait(tasks, timeout=10)
        for t in pending:
            t.cancel()
        errors = sum(1 for t in done if t.exception() is not None)
    delays = [t - sent_at[0] for t in received] or [float("nan")]
    return {"clients": len(received), "connected": listening, "errors": errors,
            "p50": percentile(delays, 0.5), "p95": percentile(delays, 0.95),
            "max": max(delays)}


def more_targets(bearer: dict[str, str], cookies: httpx.Cookies
                 ) -> list[tuple[str, str, dict[str, str], httpx.Cookies]]:
    return [
        ("staff queue page /staff/queue", "/staff/queue?site=kc", {}, cookies),
        ("GET /api/jobs?status=done&offset=3000", "/api/jobs?status=done&offset=3000",
         bearer, httpx.Cookies()),
        ("staff approval inbox /staff", "/staff", {}, cookies),
        ("staff history /staff/history?page=20", "/staff/history?page=20", {}, cookies),
    ]


def measure(data: Path, redis_url: str, passwords: dict[str, str], sync_auth: bool
            ) -> tuple[list[tuple[str, float, float, int]], dict[str, float]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "REDIS_URL": redis_url, "BENCH_SYNC_AUTH": "1" if sync_auth else "0"}
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(data), str(port)],
                            env=env, cwd=REPO)
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/api/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        token = httpx.post(f"{base}/api/auth/token", data={
            "username": "staff", "password": passwords["staff"]}).json()["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        cookies = browser_session(base, "staff", passwords["staff"])
        targets = [
            ("GET /api/health (bare)", "/api/health", {}, httpx.Cookies()),
            ("GET /api/jobs (first page, 50)", "/api/jobs", bearer, httpx.Cookies()),
        ]
        if sync_auth:  # as is, the server stays wedged after the first stall
            targets = [*targets, *more_targets(bearer, cookies)]
        rows = []
        for label, path, headers, jar in targets:
            times, failures = asyncio.run(load(base, path, headers, jar))
            rows.append((label, percentile(times, 0.5), percentile(times, 0.95), failures))
            print(f"{'sync' if sync_auth else 'as is'} {label}: p50 {rows[-1][1] * 1000:.1f} "
                  f"ms, p95 {rows[-1][2] * 1000:.1f} ms, failed {failures}", flush=True)
        if not sync_auth and rows[-1][3]:
            return rows, {}  # wedged: no SSE run either
        sse = asyncio.run(sse_fanout(base, token, redis_url))
        print(f"SSE: {sse}", flush=True)
        return rows, sse
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--serve", nargs=2, metavar=("DATA_DIR", "PORT"))
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve[0]), int(args.serve[1]))
        return

    from fabqueue.queue.embedded import EmbeddedRedis

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        redis_owner = EmbeddedRedis(data).start()
        try:
            t0 = time.perf_counter()
            passwords = seed(data, redis_owner.url)
            seed_s = time.perf_counter() - t0
            as_is = measure(data, redis_owner.url, passwords, sync_auth=False)
            synced = measure(data, redis_owner.url, passwords, sync_auth=True)
        finally:
            redis_owner.stop()
    report(as_is, synced, seed_s, args.write)


Result = tuple[list[tuple[str, float, float, int]], dict[str, float]]


def report(as_is: Result, synced: Result, seed_s: float, write: bool) -> None:
    lines = [
        "## Web",
        "",
        f"Command: `.venv/bin/python bench/bench_web.py --write` ({datetime.now(UTC):%Y-%m-%d}, "
        f"{platform.machine()}, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f} when it finished: the machine is shared).",
        "",
        f"{JOBS:,} jobs in SQLite (seeded in {seed_s:.1f} s), one uvicorn process serving "
        f"`create_app`, {CLIENTS} concurrent httpx clients × {REQUESTS_PER_CLIENT} requests "
        "each; times measured at the client (they include waiting behind the other clients); "
        "ratio = p95 ÷ p95 of the bare `/api/health` under the same load. Goal: p95 ≤ 100 ms "
        "for the paged staff queue page and `GET /api/jobs`.",
        "",
        "Two runs: the app as it is, and the same app with `deps.optional_user` as a plain "
        "`def` (a dependency override in the bench: see `override_auth_with_sync`). As it is, "
        "`optional_user` is `async` but queries the database; with more concurrent requests "
        "than the SQLite pool holds (5 + 10) it blocks the event loop in the pool's checkout "
        "while the connections' owners wait for that loop, so requests stall until the "
        "pool's 30 s timeout (the failures column), and afterwards the server stays "
        "wedged, so the other endpoints are measured in the second run only.",
        "",
        "| endpoint | as is: p50 ms | p95 ms | ratio | failed | sync auth: p50 ms | p95 ms "
        "| ratio | failed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    bare_a, bare_s = as_is[0][0][2], synced[0][0][2]
    first = {row[0]: row for row in as_is[0]}
    for label, p50s, p95s, fs in synced[0]:
        a = first.get(label)
        left = (f"{a[1] * 1000:.1f} | {a[2] * 1000:.1f} | {a[2] / bare_a:.1f} | {a[3]}"
                if a else "– | – | – | –")
        lines.append(f"| {label} | {left} | {p50s * 1000:.1f} | {p95s * 1000:.1f} "
                     f"| {p95s / bare_s:.1f} | {fs} |")
    for name, (_, sse) in (("as is", as_is), ("sync auth", synced)):
        lines.append("")
        if not sse:
            lines.append(f"SSE fan-out ({name}): not measured: after the stall the server "
                         "no longer answered database-backed requests (pool connections "
                         "never returned); it had to be killed.")
            continue
        lines.append(
            f"SSE fan-out ({name}): {SSE_CLIENTS} subscribers opened `/api/events` (bearer, "
            f"staff); {int(sse['connected'])} were connected when one `job:status` event was "
            f"published to Redis, {int(sse['clients'])} received it ({int(sse['errors'])} "
            f"streams failed); delivery delay p50 {sse['p50'] * 1000:.0f} ms, p95 "
            f"{sse['p95'] * 1000:.0f} ms, max {sse['max'] * 1000:.0f} ms (goal: all 200 "
            "within 1 s).")
    lines.append("")
    text = "\n".join(lines)
    print(text)
    if write:
        path = REPO / "bench" / "RESULTS.md"
        old = path.read_text() if path.exists() else ""
        section = re.compile(r"^## Web\n.*?(?=^## |\Z)", re.S | re.M)
        new = section.sub(lambda _m: text + "\n", old) if section.search(old) else \
            old.rstrip("\n") + "\n\n" + text + "\n"
        path.write_text(new)


if __name__ == "__main__":
    main()
