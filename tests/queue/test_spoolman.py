"""With FABQUEUE_SPOOLMAN_URL, against the real Spoolman server: its spools are mirrored,
a job's use reaches Spoolman exactly once from FabQueue's ledger, also when Spoolman was
stopped while the job ran, or when the answer to a use that landed was lost."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from fabqueue.queue.spoolman_sync import sync
from fabqueue.simulators.printer import forget_printer
from fabqueue.store.models import Device, Job
from fabqueue.store.models_spools import Spool, SpoolUsage
from fabqueue.store.spools import load, record_usage
from tests.conftest import Stack, wait_for
from tests.helpers import english_client
from tests.queue.helpers import device_workers, new_site, printer, ready_jobs
from tests.queue.test_spool_gate import _job
from tests.spoolman_fixtures import SpoolmanPeer

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


@pytest.fixture
def with_spoolman(stack: Stack, spoolman_peer: SpoolmanPeer) -> Iterator[SpoolmanPeer]:
    saved = stack.ctx.settings.spoolman_url
    stack.ctx.settings.spoolman_url = spoolman_peer.url
    try:
        yield spoolman_peer
    finally:
        stack.ctx.settings.spoolman_url = saved
        if spoolman_peer.proc is None:
            spoolman_peer.start()  # a failed test leaves it running for the next


def _mirror(stack: Stack, remote_id: int) -> Spool:
    with stack.ctx.db.session() as s:
        row = s.scalar(select(Spool).where(Spool.spoolman_id == remote_id))
        assert row is not None, f"Spoolman's spool {remote_id} was not mirrored"
        s.expunge(row)
        return row


def _used(peer: SpoolmanPeer, remote_id: int) -> float:
    return float(peer.api("GET", f"/spool/{remote_id}")["used_weight"])


def _sent_at(stack: Stack, job_id: int) -> datetime | None:
    with stack.ctx.db.session() as s:
        return s.scalar(select(SpoolUsage.sent_at).where(SpoolUsage.job_id == job_id))


def test_a_use_made_while_spoolman_was_stopped_arrives_once(stack: Stack,
                                                             with_spoolman: SpoolmanPeer) -> None:
    peer = with_spoolman
    dev = f"sm-{secrets.token_hex(2)}"
    site = new_site(stack, [printer(dev, ["PLA"])])
    forget_printer(dev)
    remote = peer.new_spool(location=f"{site}:A1")
    assert sync(stack.ctx, NOW)["pulled"] >= 1
    mirror = _mirror(stack, remote["id"])
    assert (mirror.site_id, mirror.place, mirror.material, mirror.remaining_g) == (
        site, "A1", "PLA", 1000.0)
    with stack.ctx.db.session() as s:
        load(s, s.get(Device, dev), s.get(Spool, mirror.id))  # type: ignore[arg-type]
    peer.stop()  # Spoolman goes away before the job ends
    job = _job(stack, site, [dev], grams=100)
    with device_workers(stack, [dev]):
        wait_for(lambda: stack.job(job).status == "done", timeout=90, what="done")
    assert sync(stack.ctx, NOW).get("offline") is True
    assert _sent_at(stack, job) is None  # kept for the next round
    assert _mirror(stack, remote["id"]).remaining_g == 900.0  # the ledger counts meanwhile
    peer.start()
    assert sync(stack.ctx, NOW)["sent"] == 1
    assert _sent_at(stack, job) is not None
    assert sync(stack.ctx, NOW)["sent"] == 0  # and never again
    assert _used(peer, remote["id"]) == 100.0
    assert _mirror(stack, remote["id"]).remaining_g == 900.0


def test_a_use_whose_answer_was_lost_is_not_sent_twice(stack: Stack,
                                                       with_spoolman: SpoolmanPeer) -> None:
    peer = with_spoolman
    dev = f"sl-{secrets.token_hex(2)}"
    site = new_site(stack, [printer(dev, ["PLA"])])
    remote = peer.new_spool(location=site)
    sync(stack.ctx, NOW)
    mirror = _mirror(stack, remote["id"])
    (job_id,) = ready_jobs(stack, site, 1, fits=[dev])
    with stack.ctx.db.session() as s:
        job = s.get(Job, job_id)
        job.slice_result = {"filament_g": 30.0}  # type: ignore[union-attr]
        device = s.get(Device, dev)
        load(s, device, s.get(Spool, mirror.id))  # type: ignore[arg-type]
        assert record_usage(s, job, device, "done", None) == 30.0  # type: ignore[arg-type]
        # an earlier round claimed the attempt (used_weight 0 then) and Spoolman took the
        # use, but its answer never came back: sent_at is still empty
        row = s.get(SpoolUsage, job_id)
        row.send_attempts, row.spoolman_used_before = 1, 0.0  # type: ignore[union-attr]
    peer.api("PUT", f"/spool/{remote['id']}/use", json={"use_weight": 30.0})
    assert sync(stack.ctx, NOW)["sent"] == 1
    assert _sent_at(stack, job_id) is not None
    assert _used(peer, remote["id"]) == 30.0  # once, not 60


def test_weighing_goes_to_spoolman_and_spools_are_changed_there(
        stack: Stack, with_spoolman: SpoolmanPeer) -> None:
    peer = with_spoolman
    site = new_site(stack, [])
    remote = peer.new_spool(location=site, empty_g=200.0)
    sync(stack.ctx, NOW)
    mirror = _mirror(stack, remote["id"])
    client = english_client(stack)
    staff = stack.token(client, stack.user("staff", site))
    r = client.post(f"/api/spools/{mirror.id}/weigh", headers=staff, json={"gross_g": 650})
    assert r.status_code == 200 and r.json()["remaining_g"] == 450.0
    assert peer.api("GET", f"/spool/{remote['id']}")["remaining_weight"] == 1000.0  # not yet
    assert sync(stack.ctx, NOW)["measured"] == 1
    assert peer.api("GET", f"/spool/{remote['id']}")["remaining_weight"] == pytest.approx(450.0)
    assert _mirror(stack, remote["id"]).remaining_g == 450.0
    r = client.post("/api/spools", headers=staff, json={"site": site, "material": "PLA"})
    assert r.status_code == 409 and "Spoolman" in r.json()["detail"]
    r = client.patch(f"/api/spools/{mirror.id}", headers=staff, json={"place": "B2"})
    assert r.status_code == 409
