"""A machine's care at a glance: out of order or not, its maintenance tasks and how near
each is, who is trained on it and whose training lapses soon. Shown on the trainings page
in full and on the machine board in short (issue 17: "the staff board shows who is trained
on each machine and whose training lapses soon", a task ``due_soon`` "on the board")."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabqueue.core.findings import N_
from fabqueue.core.trainings import (
    EXPIRY_NOTICE_DAYS,
    GrantState,
    Training,
    expires_on,
    grant_state,
)
from fabqueue.i18n import gettext
from fabqueue.store import trainings as st
from fabqueue.store.models import Device, User
from fabqueue.store.models_trainings import TrainingGrant
from fabqueue.web.api.trainings import task_title

TASK_STATES = {"ok": N_("in order"), "due_soon": N_("due soon"), "due": N_("due")}
GRANT_STATES = {"valid": N_("valid"), "expired": N_("expired"), "revoked": N_("revoked")}


def holders(db: Session, today: date, locale: str) -> dict[str, list[dict[str, Any]]]:
    """Per training, the newest grant of each person, with its state and end."""
    rules = {t.id: t for t in st.all_trainings(db)}
    # only people who hold a grant: the board renders this on every live refresh, and a
    # town's accounts are many more than its trained operators
    users = {u.id: u for u in db.scalars(select(User).where(
        User.id.in_(select(TrainingGrant.user_id))))}
    out: dict[str, dict[int, dict[str, Any]]] = {t: {} for t in rules}
    for g in db.scalars(select(TrainingGrant).order_by(TrainingGrant.granted_on,
                                                           TrainingGrant.id)):
        t = rules.get(g.training_id)
        u = users.get(g.user_id)
        if t is None or u is None:
            continue
        state = grant_state(t, st.fact(g), today)
        end = expires_on(t, st.fact(g))
        out[t.id][u.id] = {
            "user": u, "state": state.value, "state_text": gettext(locale,
                                                                   GRANT_STATES[state.value]),
            "ends": end, "lapsing": state == GrantState.VALID and end is not None
            and end - today <= timedelta(days=EXPIRY_NOTICE_DAYS)}
    return {t: sorted(v.values(), key=lambda h: h["user"].name) for t, v in out.items()}


def machine_care(db: Session, d: Device, at: datetime, locale: str, rules: list[Training],
                 holders_by_training: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """One machine's outage, tasks, trainings and trained people (valid grants)."""
    tasks = [{"task": v.task.task, "name": task_title(v.task, locale),
              "state": v.status.state.value,
              "state_text": gettext(locale, TASK_STATES[v.status.state.value]),
              "percent": round(v.status.fraction * 100)} for v in st.tasks_of(db, d, at)]
    covering = [t for t in rules if t.covers(d.id, d.kind)]
    valid = [h for t in covering for h in holders_by_training.get(t.id, [])
             if h["state"] == "valid"]
    return {"device": d, "outage": st.open_outage(db, d.id), "tasks": tasks,
            "trainings": [t.title(locale) for t in covering],
            "trained": sorted({h["user"].name for h in valid}),
            "lapsing": sorted({h["user"].name for h in valid if h["lapsing"]})}


def board_care(db: Session, devices: list[Device], at: datetime, tz: str,
               locale: str) -> dict[str, dict[str, Any]]:
    """``machine_care`` for each machine of a board, by device id."""
    rules = st.all_trainings(db)
    by_training = holders(db, st.lab_date(at, tz), locale)
    return {d.id: machine_care(db, d, at, locale, rules, by_training) for d in devices}
