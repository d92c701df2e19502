"""Trainings, maintenance intervals and the start gate: pure rules, dates given (no clock)."""

from __future__ import annotations

from datetime import date, timedelta

from fabqueue.core.maintenance import TEMPLATES, Counters, Interval, TaskState, status
from fabqueue.core.start_gate import JobFacts, Machine, Operator, machine_verdict, may_start
from fabqueue.core.trainings import (
    Grant,
    GrantState,
    Training,
    covering,
    expires_on,
    expiry_notice,
    grant_state,
)

D0 = date(2026, 1, 10)
LASER = Training("laser-basic", devices=("laser-1",), valid_days=365, renew_on_use=True,
                 name={"lt": "Lazerio pagrindai", "en": "Laser basics"})
PRINTERS = Training("printing", kinds=("printer",), valid_days=0)
STAFF_T = Training("laser-staff", kinds=("laser",), valid_days=30, staff=True)
LASER_1 = Machine("laser-1", "laser", "kc")


def test_grant_expires_after_valid_days_and_renews_on_use() -> None:
    g = Grant("laser-basic", D0)
    assert expires_on(LASER, g) == D0 + timedelta(days=365)
    assert grant_state(LASER, g, D0 + timedelta(days=364)) == GrantState.VALID
    assert grant_state(LASER, g, D0 + timedelta(days=365)) == GrantState.EXPIRED
    used = Grant("laser-basic", D0, last_used=D0 + timedelta(days=300))
    assert grant_state(LASER, used, D0 + timedelta(days=400)) == GrantState.VALID
    no_renew = Training("x", valid_days=365, renew_on_use=False)
    assert grant_state(no_renew, Grant("x", D0, last_used=D0 + timedelta(days=300)),
                       D0 + timedelta(days=400)) == GrantState.EXPIRED


def test_zero_days_never_expires_revoked_never_holds_future_not_yet() -> None:
    g = Grant("printing", D0)
    assert expires_on(PRINTERS, g) is None
    assert grant_state(PRINTERS, g, D0 + timedelta(days=10_000)) == GrantState.VALID
    assert grant_state(PRINTERS, Grant("printing", D0, revoked=True), D0) == GrantState.REVOKED
    assert grant_state(PRINTERS, Grant("printing", D0 + timedelta(days=1)), D0) != \
        GrantState.VALID


def test_covering_by_id_or_kind_and_titles() -> None:
    assert covering([LASER, PRINTERS, STAFF_T], "laser-1", "laser") == [LASER, STAFF_T]
    assert covering([LASER, PRINTERS], "laser-2", "laser") == []
    assert covering([LASER, PRINTERS], "mk4", "printer") == [PRINTERS]
    assert LASER.title("lt") == "Lazerio pagrindai" and LASER.title("ru") == "Laser basics"
    assert PRINTERS.title("lt") == "printing"


def test_expiry_notices_thirty_days_then_on_the_last_day() -> None:
    g = Grant("laser-basic", D0)
    end = expires_on(LASER, g)
    assert end is not None
    assert expiry_notice(LASER, g, end - timedelta(days=31)) is None
    assert expiry_notice(LASER, g, end - timedelta(days=30)) == "soon"
    assert expiry_notice(LASER, g, end - timedelta(days=1)) == "today"
    assert expiry_notice(LASER, g, end) is None  # expired: nothing more to announce
    assert expiry_notice(PRINTERS, Grant("printing", D0), D0) is None


def test_maintenance_first_limit_reached_wins() -> None:
    iv = Interval(every_hours=20, every_jobs=50)
    assert status(iv, Counters(hours=10, jobs=10)).state == TaskState.OK
    soon = status(iv, Counters(hours=18, jobs=10))
    assert soon.state == TaskState.DUE_SOON and soon.counter == "hours"
    due = status(iv, Counters(hours=1, jobs=50))
    assert due.state == TaskState.DUE and due.counter == "jobs"
    assert status(Interval(every_days=30), Counters(days=26.9)).state == TaskState.OK
    assert status(Interval(every_days=30), Counters(days=27)).state == TaskState.DUE_SOON
    assert status(Interval(every_filament_m=1000), Counters(filament_m=1000.5)).state == \
        TaskState.DUE
    assert status(Interval(), Counters(hours=1e6)).state == TaskState.OK  # no limit given


def test_templates_cover_printers_and_lasers() -> None:
    assert {"nozzle", "build_plate", "belts", "lens", "mirrors", "fume_filter",
            "tube_hours"} <= set(TEMPLATES)
    assert all(t.interval.limits() for t in TEMPLATES.values())
    assert TEMPLATES["lens"].kinds == ("laser",)


def test_machine_out_of_order_or_due_refuses_everyone_even_admins() -> None:
    broken = Machine("laser-1", "laser", "kc", out_of_order="tube cracked")
    v = may_start(broken, JobFacts(1), Operator(9, "admin"), [LASER], [], D0)
    assert v.code == "out_of_order" and v.params["reason"] == "tube cracked"
    due = Machine("laser-1", "laser", "kc", due_tasks=("lens",))
    assert may_start(due, None, None, [], [], D0).code == "maintenance_due"
    assert machine_verdict(LASER_1).ok
    assert may_start(due, JobFacts(1), Operator(1, "resident"), [LASER],
                     [Grant("laser-basic", D0)], D0, check_machine=False).ok


def test_resident_operates_own_job_only_with_a_valid_training() -> None:
    me = Operator(1, "resident")
    mine = JobFacts(owner_id=1)
    assert may_start(LASER_1, mine, me, [LASER], [], D0).code == "training_required"
    v = may_start(LASER_1, mine, me, [LASER], [Grant("laser-basic", D0 - timedelta(days=400))],
                  D0)
    assert v.code == "training_expired" and v.training == LASER
    assert may_start(LASER_1, mine, me, [LASER], [Grant("laser-basic", D0)], D0).ok
    revoked = [Grant("laser-basic", D0, revoked=True)]
    assert may_start(LASER_1, mine, me, [LASER], revoked, D0).code == "training_required"
    # someone else's job, or a machine no training covers: staff only
    assert may_start(LASER_1, JobFacts(owner_id=2), me, [LASER], [Grant("laser-basic", D0)],
                     D0).code == "staff_required"
    assert may_start(LASER_1, mine, me, [PRINTERS], [Grant("printing", D0)],
                     D0).code == "staff_required"


def test_class_jobs_by_their_teacher_never_the_pupil() -> None:
    cls = JobFacts(owner_id=5, batch_teacher_id=3)
    trained = [Grant("laser-basic", D0)]
    assert may_start(LASER_1, cls, Operator(3, "teacher"), [LASER], trained, D0).ok
    assert may_start(LASER_1, cls, Operator(5, "resident"), [LASER], trained,
                     D0).code == "staff_required"
    assert may_start(LASER_1, cls, Operator(3, "teacher"), [LASER], [], D0).code == \
        "training_required"


def test_staff_need_only_staff_trainings_and_their_own_site() -> None:
    staff = Operator(4, "staff", "kc")
    assert may_start(LASER_1, JobFacts(1), staff, [LASER], [], D0).ok
    v = may_start(LASER_1, JobFacts(1), staff, [LASER, STAFF_T], [], D0)
    assert v.code == "training_required" and v.params["training"] == "laser-staff"
    assert may_start(LASER_1, JobFacts(1), staff, [STAFF_T], [Grant("laser-staff", D0)], D0).ok
    assert may_start(LASER_1, JobFacts(1), Operator(4, "staff", "vln"), [], [],
                     D0).code == "staff_required"
    assert may_start(LASER_1, JobFacts(1), Operator(9, "admin"), [STAFF_T], [], D0).ok
