"""After approval: make the machine program, then queue the job for its machines.

Print jobs are sliced with PrusaSlicer (G-code uploaded by staff skips that); laser jobs get a
planned GRBL program. A ready job is put on its machine's queue (pinned) or its pool queue
(any compatible machine of that class at the site): RQ queues the device workers read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from sqlalchemy import select

from fabqueue.core.findings import Finding
from fabqueue.core.jobs import JobStatus
from fabqueue.core.reasons import N_, reason
from fabqueue.queue import names
from fabqueue.queue.context import Context, get_context
from fabqueue.queue.rq_state import rq_job_alive
from fabqueue.store.jobs import change_status, lock_job
from fabqueue.store.models import Device, Job, Material, Site
from fabqueue.store.queries import colour_map, laser_library, profile_set
from fabqueue.store.specs import laser_spec

log = logging.getLogger(__name__)

SLICE_TIMEOUT_S = 900
SUFFIX = {"stl": ".stl", "3mf": ".3mf", "obj": ".obj", "svg": ".svg", "gcode": ".gcode"}


def dispatch_entry_id(job_id: int) -> str:
    return f"run-{job_id}"


def enqueue_preparation(ctx: Context, job_id: int) -> None:
    Queue(names.SLICING, connection=ctx.redis).enqueue_call(
        prepare_job, args=(job_id,), job_id=names.slicing_job_id(job_id),
        timeout=SLICE_TIMEOUT_S + 60, result_ttl=600, failure_ttl=3600,
    )


def target_device(session: Any, job: Job) -> Device | None:
    """The pinned machine, or the first machine at the site that takes the material and fits."""
    if job.pinned_device_id:
        return session.get(Device, job.pinned_device_id)
    fits = set((job.analysis or {}).get("fits") or [])
    kind = "laser" if job.kind == "laser" else "printer"
    q = select(Device).where(Device.kind == kind, Device.enabled.is_(True)).order_by(Device.id)
    if job.site_id:
        q = q.where(Device.site_id == job.site_id)
    for d in session.scalars(q).all():
        if job.material_id in (d.materials or []) and (d.id in fits or not fits):
            return d
    return None


def dispatch_queue_name(job: Job, device: Device) -> str:
    if job.pinned_device_id:
        return names.device_queue(device.id)
    return names.pool_queue(device.site_id, device.printer_class or device.kind)


def push_ready(ctx: Context, job_id: int, queue_name: str, *, at_front: bool = False) -> None:
    """Put a ready job on a dispatch queue (idempotent: one entry per job)."""
    q = Queue(queue_name, connection=ctx.redis)
    entry = dispatch_entry_id(job_id)
    try:
        old = RQJob.fetch(entry, connection=ctx.redis)
        if old.origin == queue_name and entry in q.get_job_ids():
            return
        old.delete()
    except NoSuchJobError:
        pass
    q.enqueue_call("fabqueue.queue.pipeline.dispatch_marker", args=(job_id,), job_id=entry,
                   timeout=-1, result_ttl=0, at_front=at_front)


def dispatch_marker(job_id: int) -> int:
    """Never run by an RQ worker: the device worker claims these entries itself."""
    return job_id


def _fail(ctx: Context, job_id: int, reason: str, code: str) -> str:
    with ctx.db.session() as s:
        job = lock_job(s, job_id)
        if job is not None and job.status == JobStatus.SLICING:
            job.slice_result = {"ok": False, "code": code, "reason": reason}
            change_status(s, job, JobStatus.FAILED, reason=reason, action="prepare_failed")
    return "failed"


def prepare_job(job_id: int) -> str:
    ctx = get_context()
    with ctx.db.session() as s:
        job = lock_job(s, job_id)
        if job is None or job.status != JobStatus.APPROVED:
            return "skipped"
        device = target_device(s, job)
        if device is None:
            change_status(s, job, JobStatus.FAILED, action="prepare_failed",
                          reason=reason("no_machine_for_material", N_(
                              "no machine at this site takes this material any more")))
            return "failed"
        change_status(s, job, JobStatus.SLICING, data={"device": device.id})
        kind, fmt, sha, material_id = job.kind, job.file_format, job.file_sha256, job.material_id
        quality, copies = job.quality, job.copies
        device_id = device.id
    with tempfile.TemporaryDirectory(dir=ctx.files.tmp) as tmp:
        model = Path(tmp) / f"model{SUFFIX[fmt]}"
        os.symlink(ctx.files.path(sha), model)
        try:
            if kind == "laser":
                result, program_sha = _prepare_laser(ctx, job_id, model, device_id, material_id)
            elif fmt == "gcode":
                check_program_file(ctx, model, device_id, material_id)
                result = {"ok": True, "source": "uploaded"}
                program_sha = store_printer_program(ctx, model)
            else:
                result, program_sha = _slice(ctx, model, Path(tmp), device_id, material_id,
                                             quality, copies)
        except PreparationError as exc:
            return _fail(ctx, job_id, exc.reason, exc.code)
    with ctx.db.session() as s:
        job = lock_job(s, job_id)
        if job is None or job.status != JobStatus.SLICING:
            return "skipped"
        job.slice_result = result
        job.program_sha256 = program_sha
        device = s.get(Device, device_id)
        change_status(s, job, JobStatus.READY, data={"device": device_id})
        queue_name = dispatch_queue_name(job, device)  # type: ignore[arg-type]
        front = job.priority >= 10
    push_ready(ctx, job_id, queue_name, at_front=front)
    return "ready"


class PreparationError(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _slice(ctx: Context, model: Path, tmp: Path, device_id: str, material: str, quality: str,
           copies: int) -> tuple[dict[str, Any], str]:
    from fabqueue.slicing.profiles import ProfileError
    from fabqueue.slicing.prusaslicer import SliceError, slice_model

    with ctx.db.session() as s:
        device = s.get(Device, device_id)
        profile = device.profile if device else None
        size = tuple(float(v) for v in device.size_mm[:3]) if device else None
    if not profile:
        raise PreparationError("no_profile", reason("no_profile", N_(
            "the printer {device} names no slicer profile"), device=device_id))
    try:
        profiles = profile_set(ctx.settings.profiles_dir / "printers")
        files = profiles.profile_files(profile, material, quality)
        volume = profiles.build_volume(profile)
    except ProfileError as exc:
        raise PreparationError("bad_profile", reason("bad_profile", N_(
            "the slicer profile can't be used: {error}"), error=str(exc))) from None
    if size is not None:
        volume = tuple(min(a, b) for a, b in zip(volume, size, strict=True))  # type: ignore[assignment]
    out = tmp / "out.gcode"
    try:
        result = slice_model(model, out, files, copies=copies, timeout_s=SLICE_TIMEOUT_S,
                             build_volume=volume)  # type: ignore[arg-type]
    except SliceError as exc:
        raise PreparationError(exc.code, slicer_failed(exc.finding)) from None
    check_program_file(ctx, out, device_id, material, volume=volume,  # type: ignore[arg-type]
                       sliced=True)
    sha = store_printer_program(ctx, out)
    data = {k: getattr(result, k, None) for k in (
        "estimated_seconds", "filament_mm", "filament_cm3", "filament_g", "cost")}
    data.update(ok=True, device=device_id, profile=profile, quality=quality, copies=copies)
    return data, sha


def slicer_failed(cause: Finding) -> str:
    """The job's reason when the slicer failed. Its own failure goes in as a nested reason
    (code, template, params), so the reader gets it in their language, not as English text
    inside a translated sentence."""
    return reason("slicer_failed", N_("the slicer could not make this job: {error}"),
                  error=reason(cause.code, cause.text, **cause.params))


def store_printer_program(ctx: Context, program: Path) -> str:
    """Store a checked printer program as it will be sent: the file, then FabQueue's own safe
    ending (heaters and fan off, motors released) whatever the file's ending said. The one
    place where sliced and staff programs become what a printer gets (``program_sha256``)."""
    from fabqueue.core.gcode.rules import safe_ending

    writer = ctx.files.writer()
    try:
        last = b"\n"
        with program.open("rb") as f:
            while chunk := f.read(1 << 20):
                writer.write(chunk)
                last = chunk[-1:]
        ending = "".join(f"{line}\n" for line in safe_ending())
        writer.write(("" if last == b"\n" else "\n").encode()
                     + f"; FabQueue's safe ending\n{ending}".encode())
    except BaseException:
        writer.abort()
        raise
    return writer.commit()[0]


def check_program_file(ctx: Context, program: Path, device_id: str, material: str, *,
                       volume: tuple[float, float, float] | None = None,
                       sliced: bool = False) -> None:
    """The G-code check against the machine it goes to, right before it is queued: for
    staff uploads again (the machine may differ from the analysis) and for sliced programs
    (``sliced``: PrusaSlicer's motion limits from our profiles are allowed)."""
    from fabqueue.analysis.machine_check import check_file, printer_limits
    from fabqueue.queue.tasks import material_temperatures_for
    from fabqueue.store.specs import printer_spec

    with ctx.db.session() as s:
        device = s.get(Device, device_id)
        spec = printer_spec(device) if device else None
    if spec is None:
        raise PreparationError("no_machine", f"the machine {device_id} is gone")
    if volume is not None:
        spec = replace(spec, build_volume_mm=volume)
    refused = check_file(program, printer_limits(spec, material_temperatures_for(ctx, material),
                                                 sliced=sliced))
    if refused is not None:
        raise PreparationError(refused.code, reason(refused.code, refused.text,
                                                    **refused.params))


def _prepare_laser(ctx: Context, job_id: int, model: Path, device_id: str,
                   material_id: str) -> tuple[dict[str, Any], str]:
    from fabqueue.analysis.drawing import analyse_svg_toolpaths
    from fabqueue.analysis.machine_check import check_lines, laser_limits
    from fabqueue.core.findings import Refused
    from fabqueue.laser.gcode import generate_gcode
    from fabqueue.laser.materials import UnknownMaterial, get_material
    from fabqueue.laser.planning import plan_toolpaths
    from fabqueue.store.specs import material_spec

    with ctx.db.session() as s:
        device = s.get(Device, device_id)
        laser = laser_spec(device)  # type: ignore[arg-type]
        material_row = s.get(Material, material_id)
        material = material_spec(material_row) if material_row else None
        job = s.get(Job, job_id)
        site = s.get(Site, job.site_id) if job and job.site_id else None
        colours = colour_map(site.colour_map if site else None, job.colour_map if job else None)
        origin = tuple((device.settings or {}).get("origin_mm") or (0.0, 0.0))  # type: ignore[union-attr]
    library = laser_library(ctx.settings) or {}
    key = (material.laser_material if material else None) or material_id
    try:
        laser_material = get_material(library, key)
    except (UnknownMaterial, KeyError):
        raise PreparationError("unknown_material", reason("unknown_laser_material", N_(
            "the laser material {material} is not in the library"), material=key)) from None
    _report, toolpaths = analyse_svg_toolpaths(model, material=material, lasers=[laser],
                                              library=library, colours=colours,
                                              max_bytes=ctx.settings.max_upload_bytes)
    if toolpaths is None or not toolpaths.paths:
        raise PreparationError("nothing_to_cut", reason("nothing_to_cut", N_(
            "the drawing has nothing to cut")))
    plan = plan_toolpaths(list(toolpaths.paths))
    try:
        program = generate_gcode(plan, laser_material, laser, origin=origin)  # type: ignore[arg-type]
    except Refused as exc:
        f = exc.finding
        raise PreparationError(f.code, reason(f.code, f.text, **f.params)) from None
    refused = check_lines(program.lines, laser_limits(laser))
    if refused is not None:
        raise PreparationError(refused.code, reason(refused.code, refused.text,
                                                    **refused.params))
    from fabqueue.laser.beam import beam_seconds

    sha = ctx.files.put_bytes(program.text.encode())
    timing_sha = ctx.files.put_bytes(json.dumps(program.line_seconds).encode())
    data = {"ok": True, "device": device_id, "material": key, "lines": len(program.lines),
            "estimated_seconds": round(program.total_seconds, 1),
            "cut_length_mm": round(program.cut_length_mm, 1),
            # maintenance counts beam-on time (lens, mirrors, tube), not the job's length
            "beam_seconds": beam_seconds(program.lines, program.line_seconds),
            "travel_length_mm": round(program.travel_length_mm, 1),
            "bbox": program.bbox, "line_seconds_sha256": timing_sha,
            "notes": program.notes}
    return data, sha


def reconcile_pipeline(ctx: Context, settle_s: float | None = None) -> dict[str, int]:
    """Approved jobs with no preparation queued, stale slicing, ready jobs not on a queue."""
    counts = {"prepared": 0, "requeued_ready": 0}
    settle = ctx.settings.stale_after_s if settle_s is None else settle_s
    cutoff = datetime.now(UTC) - timedelta(seconds=settle)
    with ctx.db.session() as s:
        rows = list(s.execute(select(Job.id, Job.status, Job.updated_at).where(
            Job.status.in_([JobStatus.APPROVED, JobStatus.SLICING, JobStatus.READY]))))
    for job_id, status, updated in rows:
        if updated is not None and updated.replace(tzinfo=UTC) > cutoff:
            continue
        if status in (JobStatus.APPROVED, JobStatus.SLICING):
            if rq_job_alive(ctx, names.slicing_job_id(job_id)):
                continue
            with ctx.db.session() as s:
                job = lock_job(s, job_id)
                if job is None or job.status not in (JobStatus.APPROVED, JobStatus.SLICING):
                    continue
                if job.status == JobStatus.SLICING:
                    change_status(s, job, JobStatus.APPROVED, action="requeued",
                                  reason=reason("slicing_restarted", N_(
                                      "the slicing worker stopped; slicing again")))
                job.updated_at = datetime.now(UTC)
            with contextlib.suppress(NoSuchJobError):
                RQJob.fetch(names.slicing_job_id(job_id), connection=ctx.redis).delete()
            enqueue_preparation(ctx, job_id)
            counts["prepared"] += 1
        elif status == JobStatus.READY and not _on_a_queue(ctx, job_id):
            with ctx.db.session() as s:
                job = s.get(Job, job_id)
                device = target_device(s, job) if job else None
                if job is None or device is None:
                    continue
                name = dispatch_queue_name(job, device)
            push_ready(ctx, job_id, name)
            counts["requeued_ready"] += 1
    return counts


def _on_a_queue(ctx: Context, job_id: int) -> bool:
    try:
        entry = RQJob.fetch(dispatch_entry_id(job_id), connection=ctx.redis)
    except NoSuchJobError:
        return False
    return dispatch_entry_id(job_id) in Queue(entry.origin, connection=ctx.redis).get_job_ids()
