"""Shared helpers for the API tests: upload a file, wait for its analysis, build meshes."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Stack, wait_for

SETTLED = ("invalid", "awaiting_approval")


def upload(client: TestClient, headers: dict[str, str], name: str, data: bytes,
           material: str = "PLA", **fields: Any) -> Any:
    """POST /api/jobs with one file; returns the response (not asserted)."""
    form = {"material": material, **{k: str(v) for k, v in fields.items()}}
    return client.post("/api/jobs", headers=headers, data=form,
                       files={"file": (name, io.BytesIO(data), "application/octet-stream")})


def settled(client: TestClient, headers: dict[str, str], job_id: int,
            timeout: float = 60.0) -> dict[str, Any]:
    """Wait until the worker has analysed the job; returns the job as the API shows it."""

    def done() -> dict[str, Any] | None:
        r = client.get(f"/api/jobs/{job_id}", headers=headers)
        assert r.status_code == 200, r.text
        job = r.json()
        return job if job["status"] in SETTLED else None

    return wait_for(done, timeout=timeout, interval=0.2, what=f"analysis of job {job_id}")


def analysed(client: TestClient, headers: dict[str, str], name: str, data: bytes,
             material: str = "PLA", **fields: Any) -> dict[str, Any]:
    r = upload(client, headers, name, data, material, **fields)
    assert r.status_code == 201, r.text
    return settled(client, headers, r.json()["id"])


def cube_stl(size: float = 20.0) -> bytes:
    import trimesh

    return trimesh.creation.box((size, size, size)).export(file_type="stl")


def login(stack: Stack, client: TestClient, role: str, site: str | None = None
          ) -> dict[str, str]:
    return stack.token(client, stack.user(role, site))


def files_outside(root: Path, before: set[Path]) -> set[Path]:
    """Files that appeared under ``root`` since ``before`` was taken."""
    return {p for p in root.rglob("*") if p.is_file()} - before


def api_routes(app: Any) -> list[tuple[str, str]]:
    """Every (METHOD, path) under /api, whether FastAPI keeps included routers as flat
    routes (older versions) or as included-router nodes (0.16x)."""
    found: set[tuple[str, str]] = set()

    def walk(routes: Any) -> None:
        for route in routes:
            if hasattr(route, "effective_route_contexts"):
                for ctx in route.effective_route_contexts():
                    add(ctx)
            else:
                add(route)

    def add(route: Any) -> None:
        path = getattr(route, "path", "")
        for method in getattr(route, "methods", None) or ():
            if path.startswith("/api") and method != "HEAD":
                found.add((method, path))

    walk(app.routes)
    return sorted(found, key=lambda mp: (mp[1], mp[0]))


def insert_job(stack: Stack, owner: str, site: str | None, status: str, *,
               batch_id: int | None = None, program: bool = False) -> int:
    """A job as the database would hold it after analysis (the cube, fitting the site's
    printers), written directly: for tests of who may act on it, not of the analysis."""
    from fabqueue.store.models import Device, Job
    from fabqueue.store.queries import get_user

    data = cube_stl(20)
    sha = stack.ctx.files.put_bytes(data)
    with stack.ctx.db.session() as s:
        fits = [d.id for d in s.query(Device).filter(Device.site_id == site,
                                                     Device.kind == "printer")]
        job = Job(kind="print", status=status, owner_id=get_user(s, owner).id, site_id=site,
                  material_id="PLA", file_sha256=sha, file_name="cube.stl", file_format="stl",
                  size_bytes=len(data), batch_id=batch_id,
                  program_sha256=sha if program else None,
                  analysis={"ok": True, "errors": [], "warnings": [], "triangles": 12,
                            "bodies": 1, "watertight": True, "bbox_mm": [20, 20, 20],
                            "volume_cm3": 8.0, "material_g": 3.6, "estimated_seconds": 1000,
                            "cost": 0.07, "fits": fits})
        s.add(job)
        s.flush()
        return job.id


def insert_batch(stack: Stack, teacher: str, site: str, jobs: int = 1,
                 status: str = "awaiting_approval") -> tuple[int, list[int]]:
    from fabqueue.store.models import Batch
    from fabqueue.store.queries import get_user

    with stack.ctx.db.session() as s:
        batch = Batch(teacher_id=get_user(s, teacher).id, site_id=site, class_name="8b",
                      material_id="PLA")
        s.add(batch)
        s.flush()
        batch_id = batch.id
    return batch_id, [insert_job(stack, teacher, site, status, batch_id=batch_id)
                      for _ in range(jobs)]


def user_id(stack: Stack, name: str) -> int:
    from fabqueue.store.queries import get_user

    with stack.ctx.db.session() as s:
        return get_user(s, name).id


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return buf.getvalue()


def zip_bomb(expanded_mb: int = 1024, name: bytes = b"3D/3dmodel.model") -> bytes:
    """A well-formed zip whose one member inflates to ``expanded_mb`` MB of zeros, built in
    about 1 MB: every 1 MB block is deflated with a full flush, so the compressed stream is
    one piece repeated and nothing near 1 GB is ever written or held."""
    block = bytes(1 << 20)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    tail = deflate.flush(zlib.Z_FINISH)
    crc = 0
    for _ in range(expanded_mb):
        crc = zlib.crc32(block, crc)
    packed = len(piece) * expanded_mb + len(tail)
    common = struct.pack("<HHHHHIII", 20, 0, 8, 0, 0, crc, packed, expanded_mb << 20)
    out = io.BytesIO()
    out.write(b"PK\x03\x04" + common + struct.pack("<HH", len(name), 0) + name)
    for _ in range(expanded_mb):
        out.write(piece)
    out.write(tail)
    central_at = out.tell()
    central = (b"PK\x01\x02" + struct.pack("<H", 20) + common
               + struct.pack("<HHHHHII", len(name), 0, 0, 0, 0, 0, 0) + name)
    out.write(central)
    out.write(b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, 1, 1, len(central), central_at, 0))
    return out.getvalue()


def english_client(stack: Stack) -> TestClient:
    """A client that asks for English: the default language of the lab is Lithuanian, and
    the tests read the messages."""
    client = stack.client()
    client.headers["Accept-Language"] = "en"
    return client


def start_worker(stack: Stack, label: str, **env: str) -> Any:
    """A worker like the session's, logging to its own file (the fixture's start_worker
    reuses worker-0.log and truncates what a failed test would want to read)."""
    import itertools
    import subprocess
    import sys

    for n in itertools.count():
        log_path = stack.data_dir / f"{label}-{n}.log"
        if not log_path.exists():
            break
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "fabqueue", "worker"],
                                env={**stack.env, **env}, stdout=log,
                                stderr=subprocess.STDOUT)
    stack.workers.append(proc)
    return proc
