"""A large model's verdict is published before its thumbnail is drawn (issue 20: upload to
verdict), and the thumbnail still arrives; a small model's comes with the verdict as before.

The analysis task runs in this process on a job that was never queued (the session's workers
can't take it), so the picture step can look at the database at the moment it starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trimesh

from fabqueue import events as fabqueue_events
from fabqueue.analysis import mesh
from fabqueue.analysis.run import PICTURE_LATER_FACES
from fabqueue.core.jobs import JobStatus
from fabqueue.queue import tasks
from fabqueue.store.models import Job, User
from tests.conftest import Stack


def binary_stl(path: Path, triangles: np.ndarray) -> Path:
    records = np.zeros(len(triangles), dtype=[("n", "<f4", (3,)), ("v", "<f4", (3, 3)),
                                              ("a", "<u2")])
    records["v"] = triangles
    path.write_bytes(b"verdict first".ljust(80) + np.uint32(len(triangles)).tobytes()
                     + records.tobytes())
    return path


def sphere(subdivisions: int) -> np.ndarray:
    ball = trimesh.creation.icosphere(subdivisions=subdivisions, radius=30.0)
    return (ball.vertices[ball.faces] + (0.0, 0.0, 30.0)).astype(np.float32)


def analysing_job(stack: Stack, stl: Path) -> int:
    """A job waiting for its analysis, as an upload leaves it, but on no queue."""
    from sqlalchemy import select

    ctx = stack.ctx
    sha = ctx.files.put_file(stl)
    with ctx.db.session() as s:
        owner = s.scalars(select(User.id).where(User.name == "resident")).one()
        job = Job(kind="print", status=JobStatus.ANALYZING, owner_id=owner, site_id="kc",
                  material_id="PLA", quality="normal", copies=1, file_sha256=sha,
                  file_name=stl.name, file_format="stl", size_bytes=stl.stat().st_size,
                  priority=0)
        s.add(job)
        s.flush()
        return job.id


def seen_at_drawing(stack: Stack, monkeypatch: pytest.MonkeyPatch,
                    job_id: int) -> list[dict[str, Any]]:
    """Record what the database says about the job when the thumbnail starts to be drawn."""
    seen: list[dict[str, Any]] = []
    draw = mesh.draw_thumbnail

    def recording(geometry: mesh.MeshGeometry, out: Path) -> Any:
        job = stack.job(job_id)
        seen.append({"status": job.status, "thumbnail": job.thumbnail_sha256,
                     "analysed": bool(job.analysis)})
        return draw(geometry, out)

    monkeypatch.setattr(mesh, "draw_thumbnail", recording)
    # the test process is not a throwaway work-horse: leave its address space alone
    monkeypatch.setattr(tasks, "_limit_memory", lambda _mb: None)
    return seen


def test_large_model_verdict_is_out_before_its_thumbnail(
        stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    triangles = sphere(6)  # 81,920 faces: under the bar, so tile it twice
    triangles = np.concatenate([triangles, triangles + np.float32((70.0, 0.0, 0.0))])
    assert len(triangles) >= PICTURE_LATER_FACES
    job_id = analysing_job(stack, binary_stl(tmp_path / "two-balls.stl", triangles))
    seen = seen_at_drawing(stack, monkeypatch, job_id)
    published: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(fabqueue_events, "publish", lambda t, d: published.append((t, d)))
    assert tasks.analyse_job(job_id) == "ok"
    # open pages hear of the verdict, then of the picture, and fetch the job again for it
    topics = [t for t, d in published if d.get("job") == job_id]
    assert "job:status" in topics and topics[-1] == "job:thumbnail", topics
    # when the picture was started, the verdict was already committed, without a thumbnail
    assert seen == [{"status": JobStatus.AWAITING_APPROVAL, "thumbnail": None,
                     "analysed": True}]
    job = stack.job(job_id)
    assert job.status == JobStatus.AWAITING_APPROVAL
    assert job.analysis["bodies"] == 2 and job.analysis["triangles"] == len(triangles)
    assert job.thumbnail_sha256 is not None
    png = stack.ctx.files.path(job.thumbnail_sha256).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    events = [e.action for e in _events(stack, job_id)]
    assert events.count("analysed") == 1  # the thumbnail adds no second verdict


def test_small_model_thumbnail_comes_with_the_verdict(
        stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    job_id = analysing_job(stack, binary_stl(tmp_path / "ball.stl", sphere(3)))
    seen = seen_at_drawing(stack, monkeypatch, job_id)
    assert tasks.analyse_job(job_id) == "ok"
    assert seen == [{"status": JobStatus.ANALYZING, "thumbnail": None, "analysed": False}]
    job = stack.job(job_id)
    assert job.status == JobStatus.AWAITING_APPROVAL and job.thumbnail_sha256 is not None


def _events(stack: Stack, job_id: int) -> list[Any]:
    from sqlalchemy import select

    from fabqueue.store.models import JobEvent

    with stack.ctx.db.session() as s:
        rows = list(s.scalars(select(JobEvent).where(JobEvent.job_id == job_id)))
        s.expunge_all()
        return rows
