"""Staging: a file host (``drivers.base.Stages``) receives a job's program while the device
worker's claim of that job is still being decided in the database, so the upload does not
wait behind the transaction (on loopback the two take about as long as each other).

Pre-staging: while a printer waits for staff to clear its bed, the worker sends the program
of the job it would pick now (``Claiming.prestage``), so that the start after the bed-clear is
the print command alone; the pick is made again at the bed-clear, and a different job is
staged then as above. (Staging a guessed next job *at* the bed-clear was tried and measured
no faster: the device worker's own work and the upload share one interpreter. Before it, the
upload is out of staff's way: a lab's bed-clear comes minutes after the print's end.)

Staging never moves a machine: ``start`` does, after the claim's commit. A program staged
for a job this machine did not get (another printer won it, the heating limit was reached,
another job went first) just lies on its storage, named after that job, so nothing else is
ever started from it.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import select

from fabqueue.drivers.base import Stages
from fabqueue.queue.device_base import DeviceWorkerBase
from fabqueue.queue.machines import job_name
from fabqueue.store.models import Job

log = logging.getLogger("fabqueue.queue.device_worker")


class Staging:
    """One job's program on its way to the machine, in a thread of its own; a failed
    staging only means ``start`` uploads the program itself (and reports what went wrong)."""

    def __init__(self, worker: DeviceWorkerBase, job_id: int, driver: Stages) -> None:
        self.job_id = job_id
        self.driver = driver
        self.ok = False  # the program is on the machine (set by the thread when it is)
        self.thread = threading.Thread(target=self._send, args=(worker, driver),
                                       name=f"stage-{job_id}", daemon=True)
        self.thread.start()

    def _send(self, worker: DeviceWorkerBase, driver: Stages) -> None:
        try:
            with worker.ctx.db.session() as s:
                sha = s.scalar(select(Job.program_sha256).where(Job.id == self.job_id))
            if sha:
                driver.stage(job_name(self.job_id), worker.ctx.files.path(sha))
                self.ok = True
        except Exception as exc:
            log.info("%s: staging job %s failed: %s", worker.device_id, self.job_id,
                     getattr(exc, "reason", exc))

    @classmethod
    def begin(cls, worker: DeviceWorkerBase, job_id: int) -> Staging | None:
        """Send ``job_id``'s program now when the machine is a file host (else None)."""
        driver = worker.driver
        return cls(worker, job_id, driver) if isinstance(driver, Stages) else None

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    def join(self) -> None:
        self.thread.join()
