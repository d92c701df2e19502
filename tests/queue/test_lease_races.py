"""Races, proven with real concurrency (threads, and processes with their own connections),
on SQLite and, re-run with ``-m stack`` against external PostgreSQL: N workers claiming M
jobs claim each once; a site's heating limit holds when its printers start at once."""

from __future__ import annotations

import json
import random
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from fabqueue.core.devices import DeviceState
from fabqueue.queue.device_worker import DeviceWorker
from fabqueue.simulators.printer import forget_printer
from fabqueue.store.jobs import claim_ready
from fabqueue.store.models import Device, Job, JobEvent
from tests.conftest import REPO, Stack, wait_for
from tests.queue.helpers import new_site, printer, ready_jobs
from tests.queue.lease_procs import start_worker


def _check_claimed_once(stack: Stack, wins: list[tuple[str, int]], ids: list[int]) -> None:
    per_job = Counter(job for _, job in wins)
    assert sorted(per_job) == sorted(ids), "every job claimed"
    assert set(per_job.values()) == {1}, per_job
    with stack.ctx.db.session() as s:
        rows = dict(s.execute(select(Job.id, Job.device_id).where(Job.id.in_(ids))).all())
        running = s.scalar(select(func.count()).select_from(JobEvent).where(
            JobEvent.job_id.in_(ids), JobEvent.to_status == "running"))
    assert rows == {job: worker for worker, job in wins}
    assert running == len(ids)  # one audit event per claim, none from a loser


def test_n_threads_claiming_m_jobs_claim_each_once(stack: Stack) -> None:
    site = new_site(stack, [printer(f"rc-{secrets.token_hex(2)}", ["PLA"])])
    ids = ready_jobs(stack, site, 24)
    wins: list[tuple[str, int]] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker(name: str) -> None:
        order = ids[:]
        random.Random(name).shuffle(order)
        start.wait()
        for job_id in order:
            with stack.ctx.db.session() as s:
                got = claim_ready(s, job_id, name)
            if got is not None:
                with lock:
                    wins.append((name, job_id))

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    _check_claimed_once(stack, wins, ids)


CLAIM_CHILD = """
import json, sys, time
from pathlib import Path
from fabqueue.config import Settings
from fabqueue.store.db import Database
from fabqueue.store.jobs import claim_ready
name, go, ids = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
db = Database(Settings().sqlalchemy_url)
while not go.exists():
    time.sleep(0.01)
won = []
for job_id in ids:
    with db.session() as s:
        if claim_ready(s, job_id, name) is not None:
            won.append(job_id)
print(json.dumps(won))
"""


def test_n_processes_claiming_m_jobs_claim_each_once(stack: Stack, tmp_path: Path) -> None:
    site = new_site(stack, [printer(f"rp-{secrets.token_hex(2)}", ["PLA"])])
    ids = ready_jobs(stack, site, 20)
    go = tmp_path / "go"
    procs = {}
    for i in range(4):
        order = ids[:]
        random.Random(i).shuffle(order)
        procs[f"p{i}"] = subprocess.Popen(
            [sys.executable, "-c", CLAIM_CHILD, f"p{i}", str(go), json.dumps(order)],
            env=stack.env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.0)  # let them all connect, then release them together
    go.touch()
    wins: list[tuple[str, int]] = []
    for name, p in procs.items():
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err.decode()
        wins += [(name, job) for job in json.loads(out.decode().strip().splitlines()[-1])]
    _check_claimed_once(stack, wins, ids)


def _heating(stack: Stack, site: str) -> int:
    with stack.ctx.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Device).where(
            Device.site_id == site, Device.state == DeviceState.HEATING)) or 0)


def test_printers_starting_at_once_never_heat_more_than_the_limit(stack: Stack) -> None:
    ids_dev = [f"rh-{secrets.token_hex(2)}-{i}" for i in range(5)]
    site = new_site(stack, [printer(d, ["PLA"]) for d in ids_dev])
    jobs = ready_jobs(stack, site, len(ids_dev))
    saved = stack.ctx.settings.max_heating_per_site
    stack.ctx.settings.max_heating_per_site = 2
    workers = [DeviceWorker(stack.ctx, d, poll_s=0.2) for d in ids_dev]
    try:
        for w in workers:
            assert w.ensure_connected()  # takes the lease and the (simulated) machine
        start = threading.Barrier(len(workers))
        started: dict[str, bool] = {}

        def go(w: DeviceWorker, job: int) -> None:
            start.wait()
            started[w.device_id] = w.start_job(job)

        threads = [threading.Thread(target=go, args=(w, j)) for w, j in zip(workers, jobs,
                                                                          strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sum(started.values()) == 2, started
        assert _heating(stack, site) == 2
        with stack.ctx.db.session() as s:
            statuses = Counter(s.scalars(select(Job.status).where(Job.id.in_(jobs))))
        assert statuses == {"running": 2, "ready": 3}
    finally:
        stack.ctx.settings.max_heating_per_site = saved
        for w in workers:
            w.lease.release()
            forget_printer(w.device_id)


def test_printer_processes_at_one_site_never_heat_more_than_two(stack: Stack) -> None:
    devs = [f"rq-{secrets.token_hex(2)}-{i}" for i in range(4)]
    site = new_site(stack, [printer(d, ["PLA"], simulated_speed=20) for d in devs])
    jobs = ready_jobs(stack, site, len(devs), fits=devs)
    from fabqueue.queue.pipeline import push_ready

    procs = [start_worker(stack, d, "h", FABQUEUE_MAX_HEATING_PER_SITE="2") for d in devs]
    most = 0
    try:
        for d, j in zip(devs, jobs, strict=True):
            push_ready(stack.ctx, j, _pool_of(stack, d))

        def all_done() -> bool:
            nonlocal most
            most = max(most, _heating(stack, site))
            with stack.ctx.db.session() as s:
                return set(s.scalars(select(Job.status).where(Job.id.in_(jobs)))) == {"done"}

        wait_for(all_done, timeout=180, interval=0.05, what="all four prints done")
    finally:
        for p in procs:
            p.stop()
    assert 1 <= most <= 2, most
    with stack.ctx.db.session() as s:
        on = Counter(s.scalars(select(Job.device_id).where(Job.id.in_(jobs))))
    assert set(on.values()) == {1} and set(on) == set(devs)  # one job per printer


def _pool_of(stack: Stack, device_id: str) -> str:
    from fabqueue.queue import names

    with stack.ctx.db.session() as s:
        d = s.get(Device, device_id)
        assert d is not None
        return names.pool_queue(d.site_id, d.printer_class or d.kind)
