"""The job state machine.

Every status change of a job goes through :func:`check_transition`; the store layer records
it as an audit event and publishes it. Statuses are ``str`` enums so they serialise as the
plain strings of the public contract.
"""

from __future__ import annotations

from enum import StrEnum


class JobKind(StrEnum):
    PRINT = "print"
    LASER = "laser"


class JobStatus(StrEnum):
    ANALYZING = "analyzing"
    INVALID = "invalid"
    AWAITING_APPROVAL = "awaiting_approval"
    REJECTED = "rejected"
    APPROVED = "approved"
    SLICING = "slicing"
    READY = "ready"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


S = JobStatus

#: Which status may follow which. Anything else is a bug or a race and is refused.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    S.ANALYZING: frozenset({S.AWAITING_APPROVAL, S.INVALID, S.CANCELLED, S.ANALYZING}),
    S.INVALID: frozenset({S.ANALYZING}),  # staff may re-run an analysis
    S.AWAITING_APPROVAL: frozenset({S.APPROVED, S.REJECTED, S.CANCELLED, S.ANALYZING}),
    S.REJECTED: frozenset({S.AWAITING_APPROVAL}),  # staff may reconsider
    S.APPROVED: frozenset({S.SLICING, S.READY, S.FAILED, S.CANCELLED, S.REJECTED}),
    # INVALID: a model whose slicing kills the worker again and again (queue.retry)
    S.SLICING: frozenset({S.READY, S.FAILED, S.CANCELLED, S.APPROVED, S.INVALID}),
    S.READY: frozenset({S.RUNNING, S.CANCELLED, S.FAILED, S.APPROVED}),
    S.RUNNING: frozenset({S.DONE, S.FAILED, S.CANCELLED, S.INTERRUPTED}),
    S.INTERRUPTED: frozenset({S.READY, S.FAILED, S.RUNNING, S.CANCELLED}),
    S.FAILED: frozenset({S.READY, S.APPROVED}),  # staff may retry
    S.DONE: frozenset(),
    S.CANCELLED: frozenset(),
}

#: Statuses in which a job is finished and holds no machine.
FINAL: frozenset[JobStatus] = frozenset({S.DONE, S.CANCELLED, S.REJECTED, S.INVALID, S.FAILED})

#: Statuses in which the owner may still cancel (before a machine runs it).
OWNER_CANCELLABLE: frozenset[JobStatus] = frozenset(
    {S.ANALYZING, S.AWAITING_APPROVAL, S.APPROVED, S.SLICING, S.READY}
)

#: Statuses that count as "waiting in the queue" for position and expected start.
QUEUED: frozenset[JobStatus] = frozenset({S.APPROVED, S.SLICING, S.READY})


class InvalidTransition(ValueError):
    """A status change the state machine does not allow."""

    def __init__(self, current: JobStatus, target: JobStatus) -> None:
        super().__init__(f"a job cannot go from {current} to {target}")
        self.current = current
        self.target = target


def can_transition(current: JobStatus | str, target: JobStatus | str) -> bool:
    return JobStatus(target) in TRANSITIONS[JobStatus(current)]


def check_transition(current: JobStatus | str, target: JobStatus | str) -> JobStatus:
    """Return ``target`` as a :class:`JobStatus` or raise :class:`InvalidTransition`."""
    cur, tgt = JobStatus(current), JobStatus(target)
    if tgt not in TRANSITIONS[cur]:
        raise InvalidTransition(cur, tgt)
    return tgt
