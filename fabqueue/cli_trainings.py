"""``fabqueue trainings``: grant, revoke and import a lab's existing list (issue 17).

Run on the server by its administrator, so no training is needed to grant here; the grant
records no granting user (the API records who granted). Dates are the lab's days
(``settings.timezone``)."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer

from fabqueue.cli_common import DataDir, open_db, settings_for

trainings_app = typer.Typer(help="Who is trained on which machines.", no_args_is_help=True)
MAX_ROWS = 20_000


def _day(text: str | None, today: date) -> date:
    if not text:
        return today
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a date like 2026-09-01") from None
    if day > today:
        raise ValueError(f"{day} is still to come")
    return day


def import_rows(s, rows: list[list[str]], today: date) -> int:  # type: ignore[no-untyped-def]
    """Grant every row (``username,training,on``); one bad row imports nothing (raises
    ValueError naming the line)."""
    from sqlalchemy import select

    from fabqueue.store import trainings as st
    from fabqueue.store.models import User
    from fabqueue.store.models_trainings import TrainingDef

    if rows and [c.strip().lower() for c in rows[0][:2]] == ["username", "training"]:
        rows = rows[1:]
        first = 2
    else:
        first = 1
    done = 0
    for n, row in enumerate(rows, start=first):
        if not any(c.strip() for c in row):
            continue
        if len(row) < 2:
            raise ValueError(f"line {n}: expected username,training,on")
        name, training = row[0].strip(), row[1].strip()
        try:
            on = _day(row[2] if len(row) > 2 else "", today)
        except ValueError as exc:
            raise ValueError(f"line {n}: {exc}") from None
        user = s.scalar(select(User).where(User.name == name))
        if user is None:
            raise ValueError(f"line {n}: there is no user {name!r}")
        t = s.get(TrainingDef, training)
        if t is None:
            raise ValueError(f"line {n}: there is no training {training!r} (define it with "
                             "[[training]] in the devices file)")
        st.grant(s, user, t, on, None)
        done += 1
    return done


def _today(settings) -> date:  # type: ignore[no-untyped-def]
    from fabqueue.store.trainings import lab_date

    return lab_date(datetime.now(UTC), settings.timezone)


@trainings_app.command("grant")
def grant(user: str, training: str,
          on: Annotated[str | None, typer.Option("--on", help="YYYY-MM-DD (default: today)")]
          = None, data_dir: DataDir = None) -> None:
    """Grant USER the TRAINING (a new record; earlier ones stay as history)."""
    settings = settings_for(data_dir)
    db = open_db(settings)
    try:
        with db.session() as s:
            import_rows(s, [[user, training, on or ""]], _today(settings))
    except ValueError as exc:
        typer.echo(f"error: {str(exc).removeprefix('line 1: ')}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"granted {training} to {user}")


@trainings_app.command("revoke")
def revoke(user: str, training: str, data_dir: DataDir = None) -> None:
    """Revoke USER's TRAINING (the record stays, marked revoked)."""
    from sqlalchemy import select

    from fabqueue.store import trainings as st
    from fabqueue.store.models import User

    db = open_db(settings_for(data_dir))
    with db.session() as s:
        u = s.scalar(select(User).where(User.name == user))
        if u is None:
            typer.echo(f"error: there is no user {user!r}", err=True)
            raise typer.Exit(2)
        if not st.revoke(s, u, training, None, datetime.now(UTC)):
            typer.echo(f"error: {user} holds no training {training!r}", err=True)
            raise typer.Exit(1)
    typer.echo(f"revoked {training} of {user}")


@trainings_app.command("import")
def import_csv(file: Path, data_dir: DataDir = None) -> None:
    """Grant from a CSV file with columns username,training,on (a header row is optional;
    an empty date is today). Nothing is imported if any line is wrong."""
    try:
        with file.open(encoding="utf-8-sig", newline="") as f:
            rows = []
            for row in csv.reader(f):
                rows.append(row)
                if len(rows) > MAX_ROWS:
                    typer.echo(f"error: {file} has more than {MAX_ROWS} lines", err=True)
                    raise typer.Exit(2)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        typer.echo(f"error: can't read {file}: {exc}", err=True)
        raise typer.Exit(2) from None
    settings = settings_for(data_dir)
    db = open_db(settings)
    try:
        with db.session() as s:
            n = import_rows(s, rows, _today(settings))
    except ValueError as exc:
        typer.echo(f"error in {file}: {exc}; nothing imported", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"granted {n} training(s)")
