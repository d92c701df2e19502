"""All server-rendered pages, one router per area (the app mounts ``router``).

They use the same intake and approval code as the API; templates and API stay separable.
"""

from __future__ import annotations

from fastapi import APIRouter

from fabqueue.web.pages import account, admin, common, resident, staff, stats, teacher

router = APIRouter(include_in_schema=False)
for area in (common, resident, staff, teacher, admin, stats, account):
    router.include_router(area.router)
from fabqueue.web.pages import spools as spool_pages  # noqa: E402 (issue 18)

router.include_router(spool_pages.router)
from fabqueue.web.pages import trainings as training_pages  # noqa: E402 (issue 17)

router.include_router(training_pages.router)
