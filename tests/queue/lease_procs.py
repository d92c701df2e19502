"""Device workers as real processes (``fabqueue device-worker``), for the lease tests: each
logs to its own file, and the machine's lease row is read straight from the database."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fabqueue.store.models import Device
from tests.conftest import Stack

TTL_S = 4.0  # the keeper renews every third of it, whatever the loop is doing


@dataclass
class WorkerProc:
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def holds(self, stack: Stack, device_id: str) -> bool:
        owner = lease_row(stack, device_id)["lease_owner"] or ""
        return f":{self.pid}:" in owner

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGCONT)  # a paused one must wake to end
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_worker(stack: Stack, device_id: str, tag: str, **env_extra: str) -> WorkerProc:
    env = dict(stack.env)
    env.update({k: v for k, v in os.environ.items() if k.startswith("FABQUEUE_DEVICE_TEST_KEY_")})
    env["FABQUEUE_LEASE_TTL_S"] = str(TTL_S)
    env.update(env_extra)
    log = stack.data_dir / f"dw-{device_id}-{tag}.log"
    out = log.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "fabqueue", "device-worker", device_id],
                            env=env, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    return WorkerProc(proc, log)


def lease_row(stack: Stack, device_id: str) -> dict[str, Any]:
    with stack.ctx.db.session() as s:
        d = s.get(Device, device_id, populate_existing=True)
        assert d is not None
        return {"lease_owner": d.lease_owner, "lease_expires_at": d.lease_expires_at,
                "fencing_token": d.fencing_token, "state": d.state, "progress": d.progress,
                "current_job_id": d.current_job_id, "seen_at": d.seen_at,
                "state_reason": d.state_reason}
