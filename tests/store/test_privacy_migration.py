"""Revision 0004e with data: the classes a lab already has get their end date and each
pupil a pseudonym, on SQLite and (external pass) PostgreSQL; and it goes down again."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from alembic import command
from sqlalchemy import MetaData, inspect, select

from fabqueue.store.db import alembic_config, make_engine
from tests.store.test_migrations import db_url, fill, lab_rows  # noqa: F401 (fixture)

pytestmark = pytest.mark.stack


def test_existing_classes_get_end_dates_and_pseudonyms(db_url: str) -> None:  # noqa: F811
    command.upgrade(alembic_config(db_url), "0004d")
    engine = make_engine(db_url)
    rows = lab_rows()
    rows["batches"] = [
        {**rows["batches"][0], "id": 1, "class_name": "8b technologijos",
         "created_at": datetime(2026, 9, 5, 8, 0, tzinfo=UTC)},
        {**rows["batches"][0], "id": 2, "class_name": "10 B",
         "created_at": datetime(2027, 7, 2, 8, 0, tzinfo=UTC)},
    ]
    names = ["Ona Onaitė", "Jonas", "ona  onaitė", None]
    for i, job in enumerate(rows["jobs"]):
        job["batch_id"] = None
        job["student_name"] = None
        if i < 4:
            job["batch_id"], job["student_name"] = 1, names[i]
        elif i == 4:
            job["batch_id"], job["student_name"] = 2, "Petras"
    try:
        fill(engine, rows)
        command.upgrade(alembic_config(db_url), "0004e")
        meta = MetaData()
        meta.reflect(engine)
        batches, jobs = meta.tables["batches"], meta.tables["jobs"]
        with engine.connect() as conn:
            ends = dict(conn.execute(select(batches.c.id, batches.c.ends_on)).all())
            basis = set(conn.scalars(select(batches.c.basis_confirmed)))
            pupils = [tuple(r) for r in conn.execute(
                select(jobs.c.batch_id, jobs.c.pupil).where(jobs.c.batch_id.is_not(None))
                .order_by(jobs.c.id))]
            loose = set(conn.scalars(select(jobs.c.pupil).where(jobs.c.batch_id.is_(None))))
        assert {k: (v if isinstance(v, date) else date.fromisoformat(str(v)))
                for k, v in ends.items()} == {1: date(2027, 6, 30), 2: date(2028, 6, 30)}
        assert basis == {False}  # nobody confirmed it yet: the class page says so
        assert pupils == [(1, "8BTECHNOLOGI-01"), (1, "8BTECHNOLOGI-02"),
                          (1, "8BTECHNOLOGI-01"), (1, "8BTECHNOLOGI-03"), (2, "10B-01")]
        assert loose == {None}
        command.downgrade(alembic_config(db_url), "0004d")
        assert "pupil" not in {c["name"] for c in inspect(engine).get_columns("jobs")}
        assert "purge_runs" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()
