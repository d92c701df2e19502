"""Staging (fabqueue/queue/staging.py): a file host receives the program while the device
worker's claim is decided; only ``start`` moves the machine, and only after the claim's
commit; a claim that is lost, or refused by the heating limit, never starts anything.

The driver here is a stand-in of our own: what is tested is the order between the worker's
transaction and the driver's calls, which no peer can show. The real hosts' staging (the
file on the printer's storage, no second upload, never over a print) is tested against the
printer peers in tests/drivers/test_bambu.py."""

from __future__ import annotations

import secrets
import threading
from pathlib import Path
from typing import Any

import pytest

from fabqueue.drivers.base import DriverError, MachineState, MachineStatus
from fabqueue.queue.device_worker import DeviceWorker
from fabqueue.queue.machines import job_name
from fabqueue.store.jobs import claim_ready
from fabqueue.store.models import Device, Job
from tests.conftest import Stack
from tests.queue.helpers import PROGRAM, new_site, printer, ready_jobs


class FileHost:
    """Records each call with what the database said at that moment."""

    def __init__(self, stack: Stack, *, stage_fails: bool = False) -> None:
        self.stack, self.stage_fails = stack, stage_fails
        self.calls: list[tuple[Any, ...]] = []

    def _job(self, name: str) -> tuple[str, str | None]:
        with self.stack.ctx.db.session() as s:
            job = s.get(Job, int(name.removeprefix("fq-").split(".")[0]))
            assert job is not None
            return job.status, job.device_id

    def connect(self) -> None: ...

    def close(self) -> None: ...

    def status(self) -> MachineStatus:
        return MachineStatus(state=MachineState.IDLE)

    def find(self, job_name: str) -> MachineStatus | None:
        return None

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def cancel(self) -> None: ...

    def stage(self, job_name: str, program: Path) -> None:
        self.calls.append(("stage", job_name, program.read_bytes()))
        if self.stage_fails:
            raise DriverError("the upload broke off", code="offline")

    def start(self, job_name: str, program: Path) -> None:
        self.calls.append(("start", job_name, program.read_bytes(), *self._job(job_name)))


def staging_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("stage-") and t.is_alive()]


def worker_with(stack: Stack, host: FileHost) -> tuple[DeviceWorker, str]:
    device = f"st-{secrets.token_hex(2)}"
    site = new_site(stack, [printer(device, ["PLA"])])
    worker = DeviceWorker(stack.ctx, device)
    assert worker.lease.acquire()  # one driver per machine: this test is that driver
    worker.driver = host  # type: ignore[assignment]
    return worker, site


def test_the_program_is_staged_and_started_only_after_the_claim(stack: Stack) -> None:
    host = FileHost(stack)
    worker, site = worker_with(stack, host)
    [job] = ready_jobs(stack, site, 1)
    assert worker.start_job(job)
    name = job_name(job)
    assert host.calls == [("stage", name, PROGRAM),
                          ("start", name, PROGRAM, "running", worker.device_id)]
    assert not staging_threads()  # joined: the driver is never used by two threads


def test_a_lost_claim_stages_but_never_starts(stack: Stack) -> None:
    host = FileHost(stack)
    worker, site = worker_with(stack, host)
    [job] = ready_jobs(stack, site, 1)
    with stack.ctx.db.session() as s:
        assert claim_ready(s, job, "another-printer") is not None  # it won first
    assert not worker.start_job(job)
    assert [c[0] for c in host.calls] == ["stage"]  # the file lies there, nothing moved
    assert not staging_threads()
    with stack.ctx.db.session() as s:
        assert s.get(Job, job).device_id == "another-printer"  # type: ignore[union-attr]
        assert s.get(Device, worker.device_id).current_job_id is None  # type: ignore[union-attr]


def test_the_heating_limit_refuses_a_staged_job(stack: Stack,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    host = FileHost(stack)
    worker, site = worker_with(stack, host)
    [job] = ready_jobs(stack, site, 1)
    monkeypatch.setattr("fabqueue.queue.claiming.may_start_heating", lambda *_: False)
    assert not worker.start_job(job)
    assert [c[0] for c in host.calls] == ["stage"]
    with stack.ctx.db.session() as s:
        assert s.get(Job, job).status == "ready"  # type: ignore[union-attr]


def test_a_failed_staging_leaves_the_upload_to_start(stack: Stack) -> None:
    host = FileHost(stack, stage_fails=True)
    worker, site = worker_with(stack, host)
    [job] = ready_jobs(stack, site, 1)
    assert worker.start_job(job)
    assert [c[0] for c in host.calls] == ["stage", "start"]
    assert host.calls[-1][3:] == ("running", worker.device_id)


# -- pre-staging: the next program goes over while the bed waits to be cleared ------------

def waiting_for_bed_clear(stack: Stack, host: FileHost, n: int
                          ) -> tuple[DeviceWorker, list[int]]:
    from fabqueue.queue.pipeline import push_ready

    worker, site = worker_with(stack, host)
    jobs = ready_jobs(stack, site, n, fits=[worker.device_id])
    for job in jobs:
        push_ready(stack.ctx, job, worker.pool)
    worker._set_device(state="needs_bed_clear")
    return worker, jobs


def look(worker: DeviceWorker) -> None:
    worker.look_for_work()
    for thread in staging_threads():
        thread.join()


def test_the_next_program_goes_over_while_the_bed_waits_and_only_the_clear_starts_it(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("fabqueue.queue.claiming.PRESTAGE_EVERY_S", 0.0)
    host = FileHost(stack)
    worker, [job] = waiting_for_bed_clear(stack, host, 1)
    name = job_name(job)
    look(worker)
    assert host.calls == [("stage", name, PROGRAM)]
    look(worker)  # picked again: on the machine already, nothing sent twice, nothing started
    look(worker)
    assert host.calls == [("stage", name, PROGRAM)]
    assert stack.job(job).status == "ready"
    worker._set_device(state="idle")  # staff confirmed the bed is clear
    look(worker)
    assert host.calls == [("stage", name, PROGRAM),
                          ("start", name, PROGRAM, "running", worker.device_id)]


def test_a_prestaged_job_that_went_elsewhere_is_never_started_here(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    host = FileHost(stack)
    worker, jobs = waiting_for_bed_clear(stack, host, 2)
    look(worker)
    [(_, staged, _)] = host.calls
    first = next(j for j in jobs if job_name(j) == staged)
    other = next(j for j in jobs if j != first)
    with stack.ctx.db.session() as s:
        assert claim_ready(s, first, "another-printer") is not None  # a pool mate won it
    worker._set_device(state="idle")
    look(worker)
    name = job_name(other)
    assert host.calls[1:] == [("stage", name, PROGRAM),
                              ("start", name, PROGRAM, "running", worker.device_id)]


def test_a_failed_prestage_leaves_the_upload_to_the_start(stack: Stack) -> None:
    host = FileHost(stack, stage_fails=True)
    worker, _ = waiting_for_bed_clear(stack, host, 1)
    look(worker)
    worker._set_device(state="idle")
    look(worker)
    assert [c[0] for c in host.calls] == ["stage", "stage", "start"]
    assert host.calls[-1][3:] == ("running", worker.device_id)


def test_prestage_off_sends_nothing_before_the_clear(stack: Stack,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack.ctx.settings, "prestage", False)
    host = FileHost(stack)
    worker, _ = waiting_for_bed_clear(stack, host, 1)
    look(worker)
    assert host.calls == []
    worker._set_device(state="idle")
    look(worker)
    assert [c[0] for c in host.calls] == ["stage", "start"]
