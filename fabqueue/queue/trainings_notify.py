"""Periodic: a training about to lapse tells its holder (30 days before, then on its last
day); a maintenance task reaching ``due_soon`` or ``due`` tells the staff of the machine's
site. Each notice is recorded on its row (grant ``notices``, task ``notified``), so a doubled
or missed run sends nothing twice and nothing is lost. Delivery is the existing path: a
notification row (the page, and e-mail by whoever listens) and a published event
(``training_expiring``, ``maintenance_due``) with codes and parameters for other channels."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from fabqueue import events
from fabqueue.core.findings import N_
from fabqueue.core.maintenance import TaskState
from fabqueue.core.reasons import reason
from fabqueue.core.trainings import expires_on, expiry_notice
from fabqueue.store import trainings as st
from fabqueue.store.models import Device, Notification, User
from fabqueue.store.models_trainings import TrainingGrant
from fabqueue.store.staff_notices import tell_site_keepers

TRAINING_EXPIRING = "training_expiring"
MAINTENANCE_DUE = "maintenance_due"


def notify_due(ctx: Any, now: datetime) -> dict[str, int]:
    with ctx.db.session() as s:
        sent = _trainings(s, now, ctx.settings.timezone)
        staff = _maintenance(s, now)
    for topic, data in sent + staff:
        events.publish(topic, data)
    return {"trainings": len(sent), "maintenance": len(staff)}


def _trainings(s: Any, now: datetime, tz: str) -> list[tuple[str, dict[str, Any]]]:
    today = st.lab_date(now, tz)
    rules = {t.id: t for t in st.all_trainings(s) if t.valid_days > 0}
    out = []
    for g in s.scalars(select(TrainingGrant).where(TrainingGrant.revoked_at.is_(None),
                                                   TrainingGrant.training_id.in_(list(rules)))):
        t = rules[g.training_id]
        if st.current_grant(s, g.user_id, t.id) is not g:
            continue  # an older grant: the newest one speaks for the training
        when = expiry_notice(t, st.fact(g), today)
        end = expires_on(t, st.fact(g))
        if when is None or end is None:
            continue
        key = f"{when}:{end.isoformat()}"
        if key in (g.notices or []):
            continue
        holder = s.get(User, g.user_id)
        if holder is None or holder.disabled:
            continue
        last_day = end.toordinal() - 1
        params = {"training": t.title(holder.locale or "en"),
                  "date": datetime.fromordinal(last_day).date().isoformat()}
        text = N_("your training “{training}” is valid until {date}") if when == "soon" \
            else N_("your training “{training}” ends today ({date})")
        s.add(Notification(user_id=holder.id, kind=TRAINING_EXPIRING, text=TRAINING_EXPIRING,
                           params={"reason": reason(TRAINING_EXPIRING, text, **params),
                                   "training": t.id, "when": when}, at=now))
        g.notices = [*(g.notices or []), key]
        out.append((TRAINING_EXPIRING, {"user": holder.id, "training": t.id, "when": when,
                                        "expires_on": end.isoformat()}))
    return out


def _maintenance(s: Any, now: datetime) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for d in s.scalars(select(Device).order_by(Device.id)):
        for v in st.tasks_of(s, d, now):
            state = v.status.state
            if state == TaskState.OK or v.task.notified == state.value:
                continue
            v.task.notified = state.value
            text = N_("{task} on {device} is due soon") if state == TaskState.DUE_SOON \
                else N_("{task} on {device} is due: the machine takes no new job")
            params = {"task": v.task.task, "device": d.id}
            tell_site_keepers(s, d.site_id, MAINTENANCE_DUE, {
                "reason": reason(MAINTENANCE_DUE, text, **params), "device": d.id,
                "task": v.task.task, "state": state.value}, at=now)
            out.append((MAINTENANCE_DUE, {"device": d.id, "site": d.site_id,
                                          "task": v.task.task, "state": state.value}))
    return out
