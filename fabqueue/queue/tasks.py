"""RQ tasks. Each loads what it needs from the database (the truth) and writes back through
``store.jobs.change_status``; a task that finds its job in another state does nothing, so a
task run twice (after a crash or a Redis restart) is harmless."""

from __future__ import annotations

import logging
import resource
import tempfile
from pathlib import Path
from typing import Any

from rq import Callback, Queue

from fabqueue import events
from fabqueue.analysis.run import Picture, analyse_verdict_first
from fabqueue.core.findings import N_, finding
from fabqueue.core.jobs import JobStatus
from fabqueue.core.reasons import reason
from fabqueue.queue import names
from fabqueue.queue.context import Context, get_context
from fabqueue.store import queries
from fabqueue.store.jobs import change_status, lock_job
from fabqueue.store.models import Job

log = logging.getLogger(__name__)


def enqueue_analysis(ctx: Context, job_id: int) -> None:
    q = Queue(names.ANALYSIS, connection=ctx.redis)
    q.enqueue_call(
        analyse_job,
        args=(job_id,),
        job_id=names.analysis_job_id(job_id),
        timeout=ctx.settings.analysis_timeout_s,
        result_ttl=600,
        failure_ttl=3600,
        # No RQ Retry: its interval needs a scheduler we don't run, and its retries leave
        # no trace in the job's history. analysis_failed decides (fabqueue.queue.retry).
        on_failure=Callback(analysis_failed),
    )


def _limit_memory(mb: int) -> None:
    # The work-horse is a throwaway fork: a limit here protects the worker and the machine
    # from a hostile mesh without touching the parent.
    limit = mb * 1024 * 1024
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or hard > limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit if hard != resource.RLIM_INFINITY
                                                 else resource.RLIM_INFINITY))


def analyse_job(job_id: int) -> str:
    ctx = get_context()
    with ctx.db.session() as s:
        job = s.get(Job, job_id)
        if job is None or job.status != JobStatus.ANALYZING:
            return "skipped"
        job.analysis_attempts += 1
        inputs = queries.analysis_inputs(s, job, ctx.settings)
        path = ctx.files.path(job.file_sha256)
        fmt = job.file_format
        if fmt == "gcode":
            inputs["temperatures"] = material_temperatures_for(ctx, job.material_id)
    _limit_memory(ctx.settings.analysis_memory_mb)
    with tempfile.TemporaryDirectory(dir=ctx.files.tmp) as tmp:
        thumb = Path(tmp) / "thumb.png"
        picture: Picture | None = None
        try:
            result, picture = analyse_verdict_first(path, fmt, thumbnail=thumb, **inputs)
        except MemoryError:
            result = _failed_result(finding(
                "too_complex", N_("The model is too complex to analyse within the memory "
                                  "limit. Simplify it (fewer triangles) and upload again.")))
        thumb_sha = ctx.files.put_file(thumb) if thumb.exists() else None
        with ctx.db.session() as s:
            job = lock_job(s, job_id)
            if job is None or job.status != JobStatus.ANALYZING:
                return "skipped"
            if result.get("ok"):
                result = _check_allowance(s, job, result)
            job.analysis = result
            job.thumbnail_sha256 = thumb_sha
            if result.get("ok"):
                change_status(s, job, JobStatus.AWAITING_APPROVAL, action="analysed")
            else:
                change_status(s, job, JobStatus.INVALID, action="analysed",
                              reason=errors_reason(result.get("errors") or []))
        if picture is not None:  # a large model's preview: after the verdict is out
            add_thumbnail(ctx, job_id, picture, thumb)
    return "ok" if result.get("ok") else "invalid"


def add_thumbnail(ctx: Context, job_id: int, picture: Picture, out: Path) -> None:
    """Draw the preview of an analysed job and attach it (or the warning that it's missing)."""
    try:
        missing = picture()
    except MemoryError:
        missing = finding("no_thumbnail", N_("No preview picture could be made ({reason})."),
                          reason="MemoryError").to_dict()
    sha = ctx.files.put_file(out) if out.exists() else None
    with ctx.db.session() as s:
        job = lock_job(s, job_id)
        if job is None:
            return
        if sha is not None:
            job.thumbnail_sha256 = sha
        if missing is not None:  # a new dict: the JSON column sees the change
            job.analysis = {**(job.analysis or {}),
                            "warnings": [*(job.analysis or {}).get("warnings", []), missing]}
    # the verdict's pages are open already: they fetch the job again to show the picture
    events.publish(events.JOB_THUMBNAIL, {"job": job_id})


def material_temperatures_for(ctx: Context, material: str | None) -> tuple[float, float]:
    """The (nozzle, bed) °C a program may ask for with this material (from its profile)."""
    from fabqueue.analysis.machine_check import FALLBACK_TEMPERATURES, material_temperatures

    try:
        profiles = queries.profile_set(ctx.settings.profiles_dir / "printers")
    except Exception as exc:  # no profiles: the conservative fallback, never no limit
        log.warning("no filament profiles for temperature limits: %s", exc)
        return FALLBACK_TEMPERATURES
    return material_temperatures(profiles, material)


def errors_reason(errors: list[dict[str, Any]]) -> str:
    """The analysis' first error as a stored reason (the page lists them all)."""
    if not errors:
        return reason("invalid", N_("The file can't be used."))
    first = reason(errors[0].get("code", "error"), errors[0].get("text", ""),
                   **errors[0].get("params", {}))
    if len(errors) == 1:
        return first
    return reason("errors", N_("{first} (and {more} more problems)"), first=first,
                  more=len(errors) - 1)


def _check_allowance(session: Any, job: Job, result: dict[str, Any]) -> dict[str, Any]:
    """Over a monthly quota or a class budget: a warning, and staff decide (nothing lost)."""
    from fabqueue.store.forecast import month_usage_g
    from fabqueue.store.models import Batch, User

    grams = float(result.get("material_g") or 0)
    warnings = list(result.get("warnings") or [])
    owner = session.get(User, job.owner_id)
    if owner is not None and owner.quota_g_month and grams:
        used = month_usage_g(session, owner.id, exclude_job=job.id)
        if used + grams > owner.quota_g_month:
            warnings.append(finding(
                "over_quota", N_("This job takes you over your monthly allowance ({used} g "
                                 "used of {quota} g, this job {grams} g). It waits for the lab "
                                 "staff to decide."),
                used=round(used), quota=round(owner.quota_g_month), grams=round(grams)
            ).to_dict())
    batch = session.get(Batch, job.batch_id) if job.batch_id else None
    if batch is not None and batch.budget_g and grams:
        used = sum(float((j.analysis or {}).get("material_g") or 0) for j in batch.jobs
                   if j.id != job.id and j.status not in ("rejected", "cancelled", "invalid"))
        if used + grams > batch.budget_g:
            warnings.append(finding(
                "over_budget", N_("The class {name} is over its budget ({used} g of {budget} "
                                  "g with this job). The lab staff decide."),
                name=batch.class_name, used=round(used + grams), budget=round(batch.budget_g)
            ).to_dict())
    return {**result, "warnings": warnings}


def _failed_result(f: Any) -> dict[str, Any]:
    return {"ok": False, "errors": [f.to_dict()], "warnings": []}


def analysis_failed(job: Any, connection: Any, exc_type: Any, value: Any, tb: Any) -> None:
    """RQ failure callback: a timeout makes the job invalid at once (it would only time out
    again). Another error leaves the job ``analyzing`` with a failed RQ job: the reconciler
    tries it again within seconds, up to ``analysis_attempts``, then makes it invalid
    (fabqueue.queue.retry), the same path a killed worker's job takes."""
    if "Timeout" in str(exc_type):
        mark_analysis_failed(get_context(), int(job.args[0]), timeout=True)


def mark_analysis_failed(ctx: Context, job_id: int, *, timeout: bool = False) -> None:
    if timeout:
        f = finding("analysis_timeout", N_("The analysis took too long and was stopped. The "
                                           "model may be too complex: simplify it and upload "
                                           "again."))
    else:
        f = finding("analysis_failed", N_("The file could not be analysed. Check that it opens "
                                          "in your design program, export it again and "
                                          "upload it."))
    with ctx.db.session() as s:
        job = lock_job(s, job_id)
        if job is None or job.status != JobStatus.ANALYZING:
            return
        job.analysis = _failed_result(f)
        change_status(s, job, JobStatus.INVALID, action="analysis_failed",
                      reason=reason(f.code, f.text, **f.params))
