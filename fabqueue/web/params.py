"""Numbers at the edge: ids and counts are bounded to what the database can hold (a 64-bit
integer), so ``/api/jobs/99999999999999999999`` is a 422, not an overflow in the driver."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

MAX_INT = 2**63 - 1

IdPath = Annotated[int, Path(ge=0, le=MAX_INT)]
IdQuery = Annotated[int | None, Query(ge=0, le=MAX_INT)]
OffsetQuery = Annotated[int, Query(ge=0, le=MAX_INT)]
