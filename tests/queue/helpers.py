"""Helpers for dispatch tests: device workers in threads, a site of our own, uploads."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import trimesh
from fastapi.testclient import TestClient
from sqlalchemy import select

from fabqueue.queue.device_worker import DeviceWorker
from fabqueue.store import inventory
from fabqueue.store.models import Job, User
from tests.conftest import Stack, wait_for


def new_site(stack: Stack, devices: list[dict[str, Any]]) -> str:
    """A site of this test's own (so tests don't share machines), with its devices."""
    site = f"t{secrets.token_hex(3)}"
    for d in devices:
        d["site"] = site
    with stack.ctx.db.session() as s:
        inventory.apply(s, {"site": [{"id": site, "name": f"test {site}"}], "device": devices})
    return site


def printer(device_id: str, materials: list[str], **extra: Any) -> dict[str, Any]:
    return {"id": device_id, "site": "", "kind": "printer", "driver": "simulated",
            "build_volume_mm": (250, 210, 220), "materials": materials,
            "profile": "prusa_mk4", "simulated_speed": 400, **extra}


@contextmanager
def device_workers(stack: Stack, ids: list[str], poll_s: float = 0.2) -> Iterator[
        dict[str, DeviceWorker]]:
    stop = threading.Event()
    workers = {i: DeviceWorker(stack.ctx, i, poll_s=poll_s) for i in ids}
    threads = [threading.Thread(target=w.run, args=(stop,), daemon=True)
               for w in workers.values()]
    for t in threads:
        t.start()
    try:
        yield workers
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)


def cube_file(tmp: Path, size: float = 20.0, name: str = "cube.stl") -> Path:
    path = tmp / name
    trimesh.creation.box(extents=(size, size, size)).export(path)
    return path


def upload(client: TestClient, headers: dict[str, str], path: Path, material: str,
           site: str, **fields: str) -> int:
    with path.open("rb") as f:
        r = client.post("/api/jobs", headers=headers, files={"file": (path.name, f)},
                        data={"material": material, "site": site, **fields})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def status_of(client: TestClient, headers: dict[str, str], job_id: int) -> str:
    return str(client.get(f"/api/jobs/{job_id}", headers=headers).json()["status"])


def wait_status(client: TestClient, headers: dict[str, str], job_id: int, wanted: set[str],
                timeout: float = 60.0) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        job = client.get(f"/api/jobs/{job_id}", headers=headers).json()
        return job if job["status"] in wanted else None

    return wait_for(check, timeout=timeout, what=f"job {job_id} to become {wanted}")


def device(client: TestClient, headers: dict[str, str], device_id: str) -> dict[str, Any]:
    r = client.get(f"/api/devices/{device_id}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


#: a short program the simulated printer runs for about a minute of "slicer time"
PROGRAM = b"M73 P0 R1\nG28\nG1 X10 Y10 F3000\nG1 X20 Y20\nM73 P100 R0\n"


def ready_jobs(stack: Stack, site: str, n: int, fits: list[str] | None = None) -> list[int]:
    """Jobs made ready as the slicer leaves them (a program in the file store)."""
    owner = stack.user("resident")
    sha = stack.ctx.files.put_bytes(PROGRAM)
    with stack.ctx.db.session() as s:
        uid = s.scalars(select(User.id).where(User.name == owner)).one()
        jobs = [Job(kind="print", status="ready", owner_id=uid, site_id=site,
                    material_id="PLA", file_sha256=sha, file_name=f"race-{i}.gcode",
                    file_format="gcode", size_bytes=len(PROGRAM), program_sha256=sha,
                    analysis={"ok": True, "fits": fits or []},
                    slice_result={"estimated_seconds": 60}) for i in range(n)]
        s.add_all(jobs)
        s.flush()
        return [j.id for j in jobs]
