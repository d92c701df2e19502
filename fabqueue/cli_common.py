"""What every ``fabqueue`` sub-command shares: the data-folder option, the settings for it,
and the database, migrated on first use. Apart from ``cli.py`` so that command groups in
modules of their own (``cli_trainings``) use it without importing the command tree back."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from fabqueue.config import Settings

DataDir = Annotated[Path | None, typer.Option(
    "--data-dir", help="data folder (default: $FABQUEUE_DATA_DIR or ./data)")]


def settings_for(data_dir: Path | None) -> Settings:
    if data_dir is not None:
        os.environ["FABQUEUE_DATA_DIR"] = str(data_dir)
        return Settings(data_dir=data_dir)
    return Settings()


def open_db(settings: Settings, *, migrate_in_child: bool = False):  # type: ignore[no-untyped-def]
    """The database, its schema brought up to date (``migrate_in_child``: see
    ``Database.migrate``; for ``serve``, which runs for months)."""
    from fabqueue.store.db import Database

    db = Database(settings.sqlalchemy_url)
    db.migrate(in_child=migrate_in_child)
    return db
