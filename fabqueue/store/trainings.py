"""Trainings and maintenance from the database: grants, counters from the job history, and
the facts the start gate (:mod:`fabqueue.core.start_gate`) decides on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabqueue.core import start_gate
from fabqueue.core.jobs import JobStatus
from fabqueue.core.maintenance import Counters, Interval, Status, status
from fabqueue.core.trainings import Grant, GrantState, Training, covering, grant_state
from fabqueue.store.models import Batch, Device, Job, User
from fabqueue.store.models_trainings import (
    DeviceOutage,
    MaintenanceRecord,
    MaintenanceTask,
    TrainingDef,
    TrainingGrant,
)

#: Jobs that ran on a machine (and so count towards its service intervals).
RAN = (JobStatus.RUNNING, JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED,
       JobStatus.INTERRUPTED)


def aware(value: datetime) -> datetime:
    """SQLite forgets the zone: those times are UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def lab_date(now: datetime, tz: str) -> date:
    """The lab's calendar date at ``now`` (a grant's day is the lab's day, not UTC's)."""
    return aware(now).astimezone(ZoneInfo(tz)).date()


# -- trainings ------------------------------------------------------------------------------
def rule(row: TrainingDef) -> Training:
    return Training(row.id, tuple(row.devices or ()), tuple(row.kinds or ()),
                    int(row.valid_days or 0), bool(row.renew_on_use), bool(row.staff),
                    dict(row.name or {}))


def all_trainings(s: Session) -> list[Training]:
    return [rule(r) for r in s.scalars(select(TrainingDef).order_by(TrainingDef.id))]


def fact(g: TrainingGrant) -> Grant:
    return Grant(g.training_id, g.granted_on, g.last_used_on, g.revoked_at is not None)


def grant_rows(s: Session, user_id: int) -> list[TrainingGrant]:
    return list(s.scalars(select(TrainingGrant).where(TrainingGrant.user_id == user_id)
                          .order_by(TrainingGrant.granted_on, TrainingGrant.id)))


def current_grant(s: Session, user_id: int, training_id: str) -> TrainingGrant | None:
    """The latest grant not revoked (a new grant supersedes older ones)."""
    return s.scalar(select(TrainingGrant).where(
        TrainingGrant.user_id == user_id, TrainingGrant.training_id == training_id,
        TrainingGrant.revoked_at.is_(None)).order_by(TrainingGrant.granted_on.desc(),
                                                     TrainingGrant.id.desc()).limit(1))


class GrantRefused(Exception):
    """A grant or revocation someone may not make; ``code``, ``text`` (msgid), params."""

    def __init__(self, code: str, text: str, **params: Any) -> None:
        super().__init__(text.format(**params))
        self.code, self.text, self.params = code, text, params


def may_grant(s: Session, granter: User, t: TrainingDef, today: date) -> None:
    """Staff with a valid training grant it (any staff when it says ``staff = false``);
    admins always. Raises :class:`GrantRefused`."""
    from fabqueue.core.findings import N_

    if granter.role == "admin":
        return
    if granter.role != "staff":
        raise GrantRefused("staff_required", N_("Only lab staff can grant or revoke "
                                                "trainings."))
    if not t.staff:
        return
    tr = rule(t)
    if any(grant_state(tr, fact(g), today) == GrantState.VALID
           for g in grant_rows(s, granter.id) if g.training_id == t.id):
        return
    raise GrantRefused("training_required", N_("You need the training “{training}” "
                                               "yourself to grant or revoke it."),
                       training=t.id)


def grant(s: Session, user: User, t: TrainingDef, on: date, by: User | None) -> TrainingGrant:
    """A new grant row; earlier ones stay as history (the newest counts)."""
    row = TrainingGrant(user_id=user.id, training_id=t.id, granted_on=on,
                        granted_by=by.id if by else None, notices=[])
    s.add(row)
    s.flush()
    return row


def revoke(s: Session, user: User, training_id: str, by: User | None,
           now: datetime) -> int:
    """Revoke every grant of the training not yet revoked; returns how many."""
    rows = list(s.scalars(select(TrainingGrant).where(
        TrainingGrant.user_id == user.id, TrainingGrant.training_id == training_id,
        TrainingGrant.revoked_at.is_(None))))
    for r in rows:
        r.revoked_at, r.revoked_by = now, by.id if by else None
    return len(rows)


def grant_out(t: Training | None, g: TrainingGrant, today: date,
              locale: str = "en") -> dict[str, Any]:
    from fabqueue.core.trainings import expires_on

    state = grant_state(t, fact(g), today).value if t else GrantState.EXPIRED.value
    if g.revoked_at is not None:
        state = GrantState.REVOKED.value
    end = expires_on(t, fact(g)) if t else None
    return {"id": g.id, "training": g.training_id,
            "training_name": t.title(locale) if t else g.training_id,
            "state": state, "granted_on": g.granted_on.isoformat(),
            "expires_on": end.isoformat() if end else None,
            "last_used_on": g.last_used_on.isoformat() if g.last_used_on else None,
            "granted_by": g.granted_by, "granted_at": g.granted_at,
            "revoked_by": g.revoked_by, "revoked_at": g.revoked_at}


def mark_used(s: Session, user_id: int, d: Device, today: date) -> None:
    """Operating a machine renews the trainings that cover it (when they renew on use)."""
    rules = {t.id: t for t in covering(all_trainings(s), d.id, d.kind) if t.renew_on_use}
    for g in grant_rows(s, user_id):
        t = rules.get(g.training_id)
        if t is not None and grant_state(t, fact(g), today) == GrantState.VALID:
            g.last_used_on = today


# -- maintenance ----------------------------------------------------------------------------
def interval(t: MaintenanceTask) -> Interval:
    return Interval(t.every_hours, t.every_jobs, t.every_days, t.every_filament_m)


def _fraction_run(j: Job) -> float:
    """How much of its program a job ran: all of it when done, else by its time."""
    if j.status == JobStatus.DONE:
        return 1.0
    est = (j.slice_result or {}).get("estimated_seconds")
    if not est or j.actual_seconds is None:
        return 1.0
    return max(0.0, min(1.0, float(j.actual_seconds) / float(est)))


def counters(s: Session, t: MaintenanceTask, kind: str, now: datetime) -> Counters:
    """Since the task was last done (or imported): from the jobs' own start and end, a
    laser's beam-on seconds from its program, filament from the sliced length."""
    since = aware(t.since)
    hours = filament_mm = 0.0
    jobs = 0
    for j in s.scalars(select(Job).where(Job.device_id == t.device_id,
                                         Job.started_at >= since,
                                         Job.status.in_([x.value for x in RAN]))):
        jobs += 1
        started = aware(j.started_at)  # type: ignore[arg-type]
        if j.actual_seconds is not None:
            ran = float(j.actual_seconds)
        elif j.finished_at is not None:
            ran = (aware(j.finished_at) - started).total_seconds()
        else:  # running now
            ran = max(0.0, (aware(now) - started).total_seconds())
        result = j.slice_result or {}
        if kind == "laser" and result.get("beam_seconds") is not None:
            if j.status == JobStatus.RUNNING:
                est = float(result.get("estimated_seconds") or 0) or ran
                ran = float(result["beam_seconds"]) * min(1.0, ran / est)
            else:
                ran = float(result["beam_seconds"]) * _fraction_run(j)
        hours += ran / 3600.0
        if result.get("filament_mm") and j.status != JobStatus.RUNNING:  # counted at its end
            filament_mm += float(result["filament_mm"]) * _fraction_run(j)
    days = max(0.0, (aware(now) - since).total_seconds() / 86400.0)
    return Counters(round(hours, 3), jobs, round(days, 3), round(filament_mm / 1000.0, 3))


@dataclass(frozen=True)
class TaskView:
    task: MaintenanceTask
    counters: Counters
    status: Status


def tasks_of(s: Session, d: Device, now: datetime) -> list[TaskView]:
    out = []
    for t in s.scalars(select(MaintenanceTask).where(MaintenanceTask.device_id == d.id)
                       .order_by(MaintenanceTask.task)):
        c = counters(s, t, d.kind, now)
        out.append(TaskView(t, c, status(interval(t), c)))
    return out


def open_outage(s: Session, device_id: str) -> DeviceOutage | None:
    return s.scalar(select(DeviceOutage).where(DeviceOutage.device_id == device_id,
                                               DeviceOutage.returned_at.is_(None))
                    .order_by(DeviceOutage.id.desc()).limit(1))


def machine(s: Session, d: Device, now: datetime) -> start_gate.Machine:
    out = open_outage(s, d.id)
    due = tuple(v.task.task for v in tasks_of(s, d, now) if v.status.state == "due")
    return start_gate.Machine(d.id, d.kind, d.site_id, out.reason if out else None, due)


def mark_done(s: Session, t: MaintenanceTask, by: User | None, note: str,
              now: datetime) -> MaintenanceRecord:
    rec = MaintenanceRecord(task_id=t.id, done_by=by.id if by else None, note=note,
                            done_at=now)
    s.add(rec)
    t.since, t.notified = now, None  # the count starts again
    s.flush()
    return rec


# -- the gate -------------------------------------------------------------------------------
def job_facts(s: Session, job: Job | None) -> start_gate.JobFacts | None:
    if job is None:
        return None
    teacher = s.scalar(select(Batch.teacher_id).where(Batch.id == job.batch_id)) \
        if job.batch_id else None
    return start_gate.JobFacts(job.owner_id, teacher)


def check(s: Session, d: Device, job: Job | None, user: User | None, now: datetime, tz: str,
          *, check_machine: bool = True) -> start_gate.Verdict:
    """The start gate with this database's facts (``user`` None: the device worker)."""
    m = machine(s, d, now) if check_machine else start_gate.Machine(d.id, d.kind, d.site_id)
    op = start_gate.Operator(user.id, user.role, user.site_id) if user else None
    grants = [fact(g) for g in grant_rows(s, user.id)] if user else []
    return start_gate.may_start(m, job_facts(s, job), op, all_trainings(s), grants,
                                lab_date(now, tz), check_machine=check_machine)
