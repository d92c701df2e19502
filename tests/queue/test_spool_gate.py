"""Spools on real device workers (simulated printers, the session's Redis and database): a
job the loaded spool is too light for waits with ``filament_low`` until staff accept the
risk, another printer of the pool with enough takes it, and an ended job's grams come off
its spool once, with ``filament_low`` published when a site's stock falls below its limit."""

from __future__ import annotations

import json
import secrets
import threading
import time
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from fabqueue.core.reasons import decode
from fabqueue.queue import names
from fabqueue.queue.pipeline import push_ready
from fabqueue.simulators.printer import forget_printer
from fabqueue.store.models import Device, Job, Site
from fabqueue.store.models_pickup import Delivery
from fabqueue.store.models_spools import Spool, SpoolUsage
from fabqueue.store.spools import SpoolIn, load, upsert_spool
from tests.conftest import Stack, wait_for
from tests.helpers import english_client
from tests.queue.helpers import device_workers, new_site, printer, ready_jobs


def _spool(stack: Stack, site: str, device_id: str | None, remaining_g: float) -> int:
    with stack.ctx.db.session() as s:
        _, sp = upsert_spool(s, SpoolIn(id=f"sp-{secrets.token_hex(4)}", site=site,
                                        material="PLA", remaining_g=remaining_g))
        s.flush()
        if device_id is not None:
            load(s, s.get(Device, device_id), sp)  # type: ignore[arg-type]
        return sp.id


def _job(stack: Stack, site: str, fits: list[str], grams: float) -> int:
    (job_id,) = ready_jobs(stack, site, 1, fits=fits)
    with stack.ctx.db.session() as s:
        job = s.get(Job, job_id)
        assert job is not None
        job.slice_result = {"estimated_seconds": 60, "filament_g": grams}
        pool = names.pool_queue(site, s.get(Device, fits[0]).printer_class)  # type: ignore[union-attr]
    push_ready(stack.ctx, job_id, pool)
    return job_id


def _job_row(stack: Stack, job_id: int) -> Job:
    return stack.job(job_id)


def _remaining(stack: Stack, spool_id: int) -> float:
    with stack.ctx.db.session() as s:
        return s.get(Spool, spool_id).remaining_g  # type: ignore[union-attr]


def _usage(stack: Stack, job_id: int) -> list[tuple[int, float, str]]:
    with stack.ctx.db.session() as s:
        return [(u.spool_id, u.grams, u.ending)
                for u in s.scalars(select(SpoolUsage).where(SpoolUsage.job_id == job_id))]


def test_a_light_spool_holds_the_job_until_staff_accept_the_risk(stack: Stack) -> None:
    dev = f"fl-{secrets.token_hex(2)}"
    site = new_site(stack, [printer(dev, ["PLA"])])
    forget_printer(dev)
    spool = _spool(stack, site, dev, remaining_g=50)
    job = _job(stack, site, [dev], grams=100)  # needs 110 g
    client: TestClient = english_client(stack)
    staff = stack.token(client, stack.user("staff", site))
    with device_workers(stack, [dev]):
        found = wait_for(lambda: (f := decode(_job_row(stack, job).status_reason))
                         and f.code == "filament_low" and f, what="filament_low reason")
        assert found.params["left"] == 50 and found.params["need"] == 110
        shown = client.get(f"/api/jobs/{job}", headers=staff).json()
        assert shown["status"] == "ready"
        # the worker (polling every 0.2 s) looked again and again: still waiting
        time.sleep(1.5)
        assert _job_row(stack, job).status == "ready" and _remaining(stack, spool) == 50
        resident = stack.token(client, stack.user("resident"))
        assert client.post(f"/api/jobs/{job}/accept-filament-risk",
                           headers=resident).status_code == 403
        r = client.post(f"/api/jobs/{job}/accept-filament-risk", headers=staff)
        assert r.status_code == 200, r.text
        wait_for(lambda: _job_row(stack, job).status == "done", timeout=90, what="done")
    assert _usage(stack, job) == [(spool, 100.0, "done")]
    assert _remaining(stack, spool) == 0.0  # never below zero
    assert client.post("/api/jobs/999999999/accept-filament-risk",
                       headers=staff).status_code == 404


def test_another_printer_of_the_pool_takes_it_and_low_stock_is_published(
        stack: Stack) -> None:
    light, full = f"pl-{secrets.token_hex(2)}", f"pf-{secrets.token_hex(2)}"
    site = new_site(stack, [printer(light, ["PLA"]), printer(full, ["PLA"])])
    for d in (light, full):
        forget_printer(d)
    hook = "json://127.0.0.1:9/staff-hook"  # the site's staff channel (never reached here)
    with stack.ctx.db.session() as s:
        s.get(Site, site).apprise_urls = [hook]  # type: ignore[union-attr]
    light_spool = _spool(stack, site, light, remaining_g=50)
    full_spool = _spool(stack, site, full, remaining_g=900)
    heard: list[dict[str, Any]] = []
    from fabqueue.events import channel, redis_db

    pubsub = stack.ctx.redis.pubsub()
    pubsub.subscribe(channel(redis_db(stack.ctx.redis)))
    done = threading.Event()

    def listen() -> None:
        while not done.is_set():
            msg = pubsub.get_message(timeout=0.2)
            if msg and msg["type"] == "message":
                ev = json.loads(msg["data"])
                if ev["topic"] == "spool:filament_low" and ev["data"]["site"] == site:
                    heard.append(ev["data"])

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    saved = dict(stack.ctx.settings.spool_low_thresholds)
    # 950 g of PLA at the site before, 850 g after: below this site's 900 g limit
    stack.ctx.settings.spool_low_thresholds = {**saved, f"{site}:PLA": 900.0}
    try:
        job = _job(stack, site, [light, full], grams=100)
        with device_workers(stack, [light, full]):
            wait_for(lambda: _job_row(stack, job).status == "done", timeout=90, what="done")
        assert _job_row(stack, job).device_id == full
        assert _usage(stack, job) == [(full_spool, 100.0, "done")]
        assert (_remaining(stack, light_spool), _remaining(stack, full_spool)) == (50, 800)
        wait_for(lambda: heard, what="filament_low event")
        assert heard[0]["code"] == "filament_low"
        assert heard[0]["params"] == {"device": full, "material": "PLA", "grams": 850,
                                      "threshold_g": 900.0}
        with stack.ctx.db.session() as s:  # staff are told on the site's channel, once
            told = [(d.channel, d.params["material"], d.params["grams"]) for d in s.scalars(
                select(Delivery).where(Delivery.site_id == site,
                                       Delivery.event == "filament_low"))]
        assert told == [(hook, "PLA", 850)]
    finally:
        stack.ctx.settings.spool_low_thresholds = saved
        done.set()
        listener.join(timeout=5)
        pubsub.close()


def test_a_cancelled_print_takes_off_its_printed_share(stack: Stack) -> None:
    dev = f"fc-{secrets.token_hex(2)}"
    site = new_site(stack, [printer(dev, ["PLA"], simulated_speed=3)])
    forget_printer(dev)
    spool = _spool(stack, site, dev, remaining_g=1000)
    job = _job(stack, site, [dev], grams=200)
    client = english_client(stack)
    staff = stack.token(client, stack.user("staff", site))

    def progressed() -> float | None:
        with stack.ctx.db.session() as s:
            p = s.scalar(select(Device.progress).where(Device.id == dev))
        return p if p and p > 0 else None

    with device_workers(stack, [dev]):
        wait_for(progressed, timeout=60, what="some progress")
        assert client.post(f"/api/jobs/{job}/cancel", headers=staff).status_code == 200
        wait_for(lambda: _job_row(stack, job).status == "cancelled", timeout=30,
                 what="cancelled")
    ((spool_id, grams, ending),) = _usage(stack, job)
    assert spool_id == spool and ending == "cancelled"
    assert 0 < grams < 200
    assert _remaining(stack, spool) == round(1000 - grams, 1)
