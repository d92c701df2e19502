"""The declarative base every table is declared on, and the clock the rows default to.

Apart from ``models`` so that the domains' model modules (``models_trainings`` …) build on
it while ``models`` imports them to put every table on one metadata, with no circle."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON
from sqlalchemy.orm import DeclarativeBase


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}
