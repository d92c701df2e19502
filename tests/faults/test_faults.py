"""Real faults, real signals, one ``fabqueue serve`` shared by the tests in order: SIGKILL of
its Redis (with jobs in every state), of an analysis worker, of a slicing worker, of a
printer's device worker mid-print and of ``serve`` itself, then ``serve`` again.

After each: every job accounted for, none left analyzing/slicing for more than 30 s, no
print started twice (counted by OctoPrint itself), a new upload analysed within 30 s of the
fault, and no orphan process. On the external run (.ci/run) Redis is the machine's, shared:
its loss is a FLUSHDB of our own database number instead of a SIGKILL (what a Redis restart
without persistence does to us). The laser device worker's kill is in the grbl tests.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis
from rq import Worker

from tests.conftest import EXTERNAL, EXTERNAL_REDIS, needs_prusaslicer, wait_for
from tests.faults.lab import SETTLED_ANALYSIS, Lab, mesh_stl

# An OctoPrint of this module's own (a module-level fixture, not the shared one): the lab
# kills serve and its workers mid-print, and what it leaves must not meet other modules'
# prints (a clean-clone run's next OctoPrint test saw its print interrupted)
from tests.octoprint_fixtures import ensure_idle, octoprint_instance  # noqa: F401

pytestmark = [pytest.mark.stack, pytest.mark.octoprint, pytest.mark.slicer,
              needs_prusaslicer]

FAULT_S = 30.0  # the bound: nothing stuck, new uploads analysed, within this


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory,
        octoprint_instance) -> Iterator[Lab]:  # noqa: F811
    ensure_idle(octoprint_instance)
    lab = Lab(tmp_path_factory.mktemp("faults"), octoprint_instance)
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()


@pytest.fixture(autouse=True)
def bed_cleared_after(lab: Lab) -> Iterator[None]:
    """A test that fails mid-print must not leave the printer waiting for the next one."""
    yield
    with contextlib.suppress(Exception):
        if lab.proc is not None and lab.proc.poll() is None:
            wait_for(lambda: lab.device("op")["state"] != "busy", timeout=240, interval=1)
            if lab.device("op")["state"] == "needs_bed_clear":
                with lab.http() as h:
                    h.post("/api/devices/op/bed-cleared", headers=lab.auth("staff"),
                           json={"job": lab.device("op")["job"]})


def redis_conn(lab: Lab) -> redis.Redis:
    if EXTERNAL:
        return redis.Redis.from_url(EXTERNAL_REDIS)
    from fabqueue.queue.embedded import socket_path_for

    return redis.Redis(unix_socket_path=str(socket_path_for(lab.data_dir)))


def worker_on(lab: Lab, rq_job_id: str) -> psutil.Process | None:
    """The RQ worker process of serve's that runs ``rq_job_id`` now."""
    conn = redis_conn(lab)
    try:
        for w in Worker.all(connection=conn):
            if w.get_current_job_id() == rq_job_id:
                return psutil.Process(w.pid)
    except (redis.RedisError, psutil.NoSuchProcess):
        return None
    finally:
        conn.close()
    return None


def horse_of(worker: psutil.Process) -> psutil.Process | None:
    with contextlib.suppress(psutil.NoSuchProcess):
        kids = worker.children()
        return kids[0] if kids else None
    return None


def running_once(lab: Lab, job_id: int) -> None:
    transitions = [e["to"] for e in lab.events(job_id) if e["from"] != e["to"]]
    assert transitions.count("running") == 1, transitions


def print_on_octoprint(lab: Lab, tmp: Path, size: float = 14) -> int:
    job_id = lab.upload(mesh_stl(tmp / f"print-{size}.stl", size=size))
    lab.wait_status(job_id, ("awaiting_approval",), timeout=60)
    lab.approve(job_id, "op")
    lab.wait_status(job_id, ("running",), timeout=90)
    wait_for(lambda: (lab.device("op").get("progress") or 0) > 0 or
             lab.job(job_id)["status"] != "running", timeout=60, interval=0.3,
             what="the print to make progress")
    return job_id


def finished_once_on_octoprint(lab: Lab, job_id: int, timeout: float = 180) -> None:
    job = lab.wait_status(job_id, ("done", "failed", "interrupted"), timeout=timeout)
    assert job["status"] == "done", job
    running_once(lab, job_id)
    wait_for(lambda: lab.prints_per_job().get(job_id) == 1, timeout=15, interval=0.5,
             what=f"OctoPrint to count job {job_id}'s print")
    assert lab.prints_per_job()[job_id] == 1
    # staff take the print off: the printer is free for the next test's job
    wait_for(lambda: lab.device("op")["state"] == "needs_bed_clear", timeout=30,
             interval=0.3, what="the printer to wait for its bed to be cleared")
    with lab.http() as h:
        r = h.post("/api/devices/op/bed-cleared", headers=lab.auth("staff"),
                   json={"job": job_id})
    assert r.status_code in (200, 202, 204), r.text
    wait_for(lambda: lab.device("op")["state"] == "idle", timeout=30, interval=0.3,
             what="the printer to be idle again")


def test_redis_lost_with_jobs_in_every_state(lab: Lab, tmp_path: Path) -> None:
    waiting = lab.upload(mesh_stl(tmp_path / "waiting.stl", size=10))
    lab.wait_status(waiting, ("awaiting_approval",))
    done = lab.upload(mesh_stl(tmp_path / "done.stl", size=8))
    lab.wait_status(done, ("awaiting_approval",))
    lab.approve(done, "sim")
    lab.wait_status(done, ("done",), timeout=120)
    to_slice = lab.upload(mesh_stl(tmp_path / "to-slice.stl", "sphere", size=25))
    lab.wait_status(to_slice, ("awaiting_approval",), timeout=60)
    analysing_stl = mesh_stl(tmp_path / "analysing.stl", "sphere", size=30)
    printing = print_on_octoprint(lab, tmp_path, size=30)  # long enough to kill Redis under
    lab.approve(to_slice, "sim")
    analysing = lab.upload(analysing_stl)
    before = {j: lab.job(j)["status"] for j in (waiting, done, printing, to_slice, analysing)}

    old = lab.redis_server()
    if EXTERNAL:
        redis.Redis.from_url(EXTERNAL_REDIS).flushdb()
    else:
        assert old is not None, "serve should run its embedded Redis as a child"
        old.send_signal(signal.SIGKILL)
    fault = time.monotonic()
    if not EXTERNAL:
        wait_for(lambda: (r := lab.redis_server()) is not None and r.pid != old.pid,
                 timeout=FAULT_S, interval=0.2, what="serve to start its Redis again")
        assert "starting it again" in lab.output()
    took = lab.new_upload_is_analysed(tmp_path, timeout=FAULT_S)
    print(f"Redis lost: a new upload analysed {took:.1f} s after "
          f"({time.monotonic() - fault:.1f} s since the fault); before: {before}")
    after = lab.nothing_stuck(list(before), within_s=FAULT_S)
    assert before[printing] == "running", before
    assert after[waiting] == "awaiting_approval" and after[done] == "done"
    assert after[analysing] in SETTLED_ANALYSIS
    lab.wait_status(to_slice, ("ready", "running", "done"), timeout=90)
    finished_once_on_octoprint(lab, printing)
    assert lab.orphans() == []
    # one "could not connect" line per worker, not hundreds
    assert lab.output().count("Redis unreachable") <= 10


def test_analysis_worker_killed_is_retried_with_a_trace(lab: Lab, tmp_path: Path) -> None:
    # dense: the analysis of issue 20 ends a 327k-face sphere in ~0.3 s, near the polls below
    job_id = lab.upload(mesh_stl(tmp_path / "heavy.stl", "dense-sphere", size=40))
    worker = wait_for(lambda: worker_on(lab, f"analyse-{job_id}"), timeout=60, interval=0.05,
                      what="a worker to take the analysis")
    horse = horse_of(worker)
    worker.send_signal(signal.SIGKILL)
    fault = time.monotonic()
    if horse is not None:  # PR_SET_PDEATHSIG: the horse does not outlive its worker
        psutil.wait_procs([horse], timeout=10)
        assert not horse.is_running() or horse.status() == psutil.STATUS_ZOMBIE
    retried = wait_for(lambda: [e for e in lab.events(job_id) if e["action"] == "retried"],
                       timeout=FAULT_S, interval=0.3, what="a retried event")
    print(f"analysis worker killed: retried after {time.monotonic() - fault:.1f} s")
    assert retried[0]["data"]["stage"] == "analysis"
    job = lab.wait_status(job_id, SETTLED_ANALYSIS, timeout=FAULT_S + 30)
    if job["status"] == "invalid":
        assert job["status_reason"]
    lab.new_upload_is_analysed(tmp_path, timeout=FAULT_S)
    wait_for(lambda: len(lab.rq_workers()) >= 2, timeout=30, what="the worker back")
    assert lab.orphans() == []


def test_slicing_worker_killed_is_retried_and_its_slicer_ended(lab: Lab,
                                                                tmp_path: Path) -> None:
    job_id = lab.upload(mesh_stl(tmp_path / "slow-slice.stl", "sphere", size=45))
    lab.wait_status(job_id, ("awaiting_approval",), timeout=60)
    lab.approve(job_id, "sim")

    def slicer_running() -> tuple[psutil.Process, list[psutil.Process]] | None:
        worker = worker_on(lab, f"slice-{job_id}")
        horse = horse_of(worker) if worker else None
        if horse is None:
            return None
        with contextlib.suppress(psutil.NoSuchProcess):
            slicers = [p for p in horse.children(recursive=True)
                       if "prusa" in p.name().lower()]
            return (worker, slicers) if slicers else None
        return None

    worker, slicers = wait_for(slicer_running, timeout=60, interval=0.05,
                               what="PrusaSlicer to run for the job")
    worker.send_signal(signal.SIGKILL)
    fault = time.monotonic()
    # the horse dies with its worker; serve (a subreaper) ends the orphaned slicer
    psutil.wait_procs(slicers, timeout=15)
    assert all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in slicers)
    retried = wait_for(lambda: [e for e in lab.events(job_id) if e["action"] == "retried"],
                       timeout=FAULT_S, interval=0.3, what="a retried event")
    print(f"slicing worker killed: retried after {time.monotonic() - fault:.1f} s")
    assert retried[0]["data"]["stage"] == "slicing"
    # sliced again from the start (which takes as long as the first time)
    lab.wait_status(job_id, ("ready", "running", "done"), timeout=FAULT_S + 60)
    lab.new_upload_is_analysed(tmp_path, timeout=FAULT_S)
    assert lab.orphans() == []


def test_printer_device_worker_killed_mid_print_reattaches(lab: Lab, tmp_path: Path) -> None:
    job_id = print_on_octoprint(lab, tmp_path, size=16)
    old = lab.device_worker("op")
    old.send_signal(signal.SIGKILL)
    # the process driving it (serve's device host, or its own device worker) comes back
    wait_for(lambda: (p := lab.driving("op")) and p[0].pid != old.pid, timeout=FAULT_S,
             interval=0.3, what="serve to start the printer's worker again")
    lab.new_upload_is_analysed(tmp_path, timeout=FAULT_S)
    finished_once_on_octoprint(lab, job_id)
    assert any(e["action"] == "reattached" for e in lab.events(job_id))
    assert lab.orphans() == []


def test_serve_killed_takes_its_tree_and_the_next_serve_carries_on(lab: Lab,
                                                                   tmp_path: Path) -> None:
    # a second serve on the same folder is refused while the first runs
    second = subprocess.run([sys.executable, "-m", "fabqueue", "serve", "--port", "1",
                             "--data-dir", str(lab.data_dir)], env=lab.env,
                            capture_output=True, text=True, timeout=60)
    assert second.returncode == 2 and "another fabqueue serve" in second.stderr
    printing = print_on_octoprint(lab, tmp_path, size=16)
    analysing = lab.upload(mesh_stl(tmp_path / "analysing-2.stl", "sphere", size=30))
    tree = lab.children()
    lab.kill_serve()
    # every child, Redis and the workers' horses included, dies with serve
    assert lab.orphans(timeout=15) == []
    _gone, alive = psutil.wait_procs(tree, timeout=1)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]

    # a leftover that was not tied to serve (an older FabQueue, another OS) is ended on start
    env = dict(lab.env, FABQUEUE_DATA_DIR=str(lab.data_dir))
    leftover = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                                env=env)
    try:
        lab.start()
        assert leftover.wait(timeout=15) is not None
    finally:
        if leftover.poll() is None:
            leftover.kill()
    lab.new_upload_is_analysed(tmp_path, timeout=FAULT_S)
    lab.nothing_stuck([analysing], within_s=FAULT_S)
    finished_once_on_octoprint(lab, printing)
    assert lab.orphans() == []


def test_no_print_was_ever_started_twice(lab: Lab) -> None:
    counts = lab.prints_per_job()
    assert counts, "the fault tests should have printed on OctoPrint"
    assert all(n == 1 for n in counts.values()), counts
