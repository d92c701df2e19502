"""Shared helpers for the API tests: upload a file, wait for its analysis, build meshes."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from conftest import Stack, wait_for
from fastapi.testclient import TestClient

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
