"""The one rule: may this machine start this job now, operated by this person?

Every start path asks it (the laser's start, a printer's bed-clear, material loading, the
device worker's claim), for every driver, so the answer can't differ between them. It
returns a reason code with its parameters; callers turn it into a 403 or a waiting reason.

Order of the checks: the machine first (out of order, maintenance due: nobody may start it,
admins included, and a job already running finishes), then the operator: admins always;
staff of the machine's site, with the training when it says ``staff = true``; a resident or
teacher only for their *own* job (a class job: its teacher), with a valid training covering
the machine. A pupil never operates; someone else's job needs staff.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from fabqueue.core.access import Role
from fabqueue.core.findings import N_
from fabqueue.core.trainings import Grant, GrantState, Training, covering, grant_state


@dataclass(frozen=True)
class Machine:
    id: str
    kind: str
    site: str
    out_of_order: str | None = None  # the reason staff gave; None: in order
    due_tasks: tuple[str, ...] = ()  # ids of the maintenance tasks that are due


@dataclass(frozen=True)
class Operator:
    user_id: int
    role: str
    site: str | None = None


@dataclass(frozen=True)
class JobFacts:
    owner_id: int
    batch_teacher_id: int | None = None  # set for a class job


@dataclass(frozen=True)
class Verdict:
    code: str | None  # None: allowed
    text: str = ""  # English msgid for the reason
    params: dict[str, Any] = field(default_factory=dict)
    training: Training | None = None  # the training the reason names

    @property
    def ok(self) -> bool:
        return self.code is None


ALLOWED = Verdict(None)


def machine_verdict(m: Machine) -> Verdict:
    """Whether the machine may take a job at all (the device worker's question)."""
    if m.out_of_order is not None:
        return Verdict("out_of_order", N_("The machine {device} is out of order: {reason}"),
                       {"device": m.id, "reason": m.out_of_order})
    if m.due_tasks:
        return Verdict("maintenance_due", N_("The machine {device} waits for maintenance: "
                                             "{tasks}."),
                       {"device": m.id, "tasks": ", ".join(m.due_tasks)})
    return ALLOWED


def may_start(m: Machine, job: JobFacts | None, operator: Operator | None,
              trainings: Sequence[Training], grants: Sequence[Grant], today: date, *,
              check_machine: bool = True) -> Verdict:
    """``operator`` None: the device worker starting by itself (only the machine counts).
    ``grants``: the operator's grants (all of them; revoked and expired ones too).
    ``check_machine`` False: an act that starts nothing by itself (a bed-clear: the worker
    asks again before the next job), so only who may do it counts."""
    if check_machine:
        verdict = machine_verdict(m)
        if not verdict.ok:
            return verdict
    if operator is None or operator.role == Role.ADMIN:
        return ALLOWED
    needed = covering(trainings, m.id, m.kind)
    if operator.role == Role.STAFF:
        if operator.site != m.site:
            return Verdict("staff_required", N_("Only lab staff of this site can control "
                                                "this machine."))
        needed = [t for t in needed if t.staff]
        if not needed:
            return ALLOWED
        return _trained(needed, grants, today)
    own = job is not None and (
        operator.user_id == job.batch_teacher_id if job.batch_teacher_id is not None
        else operator.user_id == job.owner_id)
    if not own or operator.role not in (Role.RESIDENT, Role.TEACHER) or not needed:
        return Verdict("staff_required", N_("Only lab staff of this site can control this "
                                            "machine."))
    return _trained(needed, grants, today)


def _trained(needed: Sequence[Training], grants: Sequence[Grant], today: date) -> Verdict:
    """Any one valid grant of a covering training suffices; the reason names the first."""
    by_id = {t.id: t for t in needed}
    expired: Training | None = None
    for g in grants:
        t = by_id.get(g.training_id)
        if t is None:
            continue
        state = grant_state(t, g, today)
        if state == GrantState.VALID:
            return ALLOWED
        if state == GrantState.EXPIRED and expired is None:
            expired = t
    if expired is not None:
        return Verdict("training_expired", N_("Your training “{training}” has expired: ask "
                                              "the lab staff to renew it."),
                       {"training": expired.id}, expired)
    return Verdict("training_required", N_("You need the training “{training}” to operate "
                                           "this machine."), {"training": needed[0].id},
                   needed[0])
