"""``[[training]]`` and ``[[maintenance]]`` of the devices file (issue 17), and their import.

A maintenance task names devices or kinds; the import makes one task row per machine it
covers, so each machine counts its own interval. A task whose id is a built-in template
(``nozzle``, ``lens`` …) takes the template's name and intervals for what it omits.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabqueue.core.maintenance import TEMPLATES
from fabqueue.store.models import Device
from fabqueue.store.models_trainings import MaintenanceTask, TrainingDef

ID = r"^[A-Za-z0-9_.-]+$"
LOCALES = ("lt", "ru", "en")


def _names(value: str | dict[str, str] | None) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, str):
        return {"en": value}
    bad = [k for k in value if k not in LOCALES]
    if bad:
        raise ValueError(f"name: languages {bad} are not lt, ru or en")
    return {k: v[:200] for k, v in value.items()}


class TrainingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(..., min_length=1, max_length=64, pattern=ID)
    name: str | dict[str, str] | None = None
    devices: list[str] = Field(default_factory=list, max_length=500)
    kinds: list[str] = Field(default_factory=list, max_length=2)
    valid_days: int = Field(365, ge=0, le=36500)
    renew_on_use: bool = False
    staff: bool = False

    @model_validator(mode="after")
    def _covers_something(self) -> TrainingIn:
        if not self.devices and not self.kinds:
            raise ValueError(f"training {self.id} needs devices = [...] or kinds = [...]")
        bad = [k for k in self.kinds if k not in ("printer", "laser")]
        if bad:
            raise ValueError(f"training {self.id}: kinds {bad} are not printer or laser")
        _names(self.name)
        return self


class MaintenanceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(..., min_length=1, max_length=64, pattern=ID)
    template: str | None = None  # a built-in task to start from; the id itself also works
    name: str | dict[str, str] | None = None
    devices: list[str] = Field(default_factory=list, max_length=500)
    kinds: list[str] = Field(default_factory=list, max_length=2)
    every_hours: float | None = Field(None, gt=0, le=1e6)
    every_jobs: int | None = Field(None, gt=0, le=1_000_000)
    every_days: float | None = Field(None, gt=0, le=36500)
    every_filament_m: float | None = Field(None, gt=0, le=1e7)

    @model_validator(mode="after")
    def _complete(self) -> MaintenanceIn:
        base = TEMPLATES.get(self.template or self.id)
        if self.template and base is None:
            raise ValueError(f"maintenance {self.id}: template {self.template!r} is not one "
                             f"of {', '.join(TEMPLATES)}")
        if not self.devices and not self.kinds:
            if base is None:
                raise ValueError(f"maintenance {self.id} needs devices = [...] or kinds = "
                                 "[...]")
            self.kinds = list(base.kinds)
        if base is not None and not any((self.every_hours, self.every_jobs, self.every_days,
                                         self.every_filament_m)):
            iv = base.interval
            self.every_hours, self.every_jobs = iv.every_hours, iv.every_jobs
            self.every_days, self.every_filament_m = iv.every_days, iv.every_filament_m
        if not any((self.every_hours, self.every_jobs, self.every_days,
                    self.every_filament_m)):
            raise ValueError(f"maintenance {self.id} needs every_hours, every_jobs, "
                             "every_days or every_filament_m")
        if base is not None and self.name is None:
            self.name = {"en": base.name}
        _names(self.name)
        return self


def upsert_training(session: Session, t: TrainingIn) -> str:
    row = session.get(TrainingDef, t.id)
    new = row is None
    if row is None:
        row = TrainingDef(id=t.id)
        session.add(row)
    row.name = _names(t.name) or {"en": t.id}
    row.devices, row.kinds = list(t.devices), list(t.kinds)
    row.valid_days, row.renew_on_use, row.staff = t.valid_days, t.renew_on_use, t.staff
    return "added" if new else "updated"


def upsert_maintenance(session: Session, m: MaintenanceIn) -> list[str]:
    """One task row per covered machine; an existing one keeps its count (``since``)."""
    q = select(Device).order_by(Device.id)
    machines = [d for d in session.scalars(q) if d.id in m.devices or d.kind in m.kinds]
    unknown = set(m.devices) - {d.id for d in machines}
    if unknown:
        raise ValueError(f"maintenance {m.id} names device(s) {', '.join(sorted(unknown))}, "
                         "which do not exist")
    out = []
    for d in machines:
        row = session.scalar(select(MaintenanceTask).where(
            MaintenanceTask.device_id == d.id, MaintenanceTask.task == m.id))
        if row is None:
            row = MaintenanceTask(task=m.id, device_id=d.id)
            session.add(row)
            out.append("added")
        else:
            out.append("updated")
        row.name = _names(m.name) or {"en": m.id}
        row.every_hours, row.every_jobs = m.every_hours, m.every_jobs
        row.every_days, row.every_filament_m = m.every_days, m.every_filament_m
    return out


def apply(session: Session, trainings: list[TrainingIn],
          maintenance: list[MaintenanceIn]) -> dict[str, list[str]]:
    summary: dict[str, list[str]] = {"added": [], "updated": []}
    for t in trainings:
        summary[upsert_training(session, t)].append(f"training {t.id}")
    for m in maintenance:
        for what in upsert_maintenance(session, m):
            summary[what].append(f"maintenance {m.id}")
    session.flush()
    return summary
