"""The staff page of spools: what is on the shelves and printers of a site, weighing one,
loading one on a printer, adding one, and the jobs that wait for filament."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabqueue.core.jobs import JobStatus
from fabqueue.core.reasons import decode
from fabqueue.queue.spool_gate import FILAMENT_LOW
from fabqueue.store.models import Device, Job, Material, User
from fabqueue.store.models_spools import Spool
from fabqueue.web.deps import get_db, optional_user
from fabqueue.web.pages.common import forbidden_unless_staff, redirect
from fabqueue.web.pages.render import render
from fabqueue.web.pages.staff import site_choice

router = APIRouter(include_in_schema=False)


@router.get("/staff/spools")
def spools_page(request: Request, site: str | None = None,
                user: User | None = Depends(optional_user),
                db: Session = Depends(get_db, scope="function")) -> Response:
    if user is None:
        return redirect("/login")
    if (denied := forbidden_unless_staff(request, user)) is not None:
        return denied
    sites, chosen = site_choice(db, user, site)
    spools = list(db.scalars(select(Spool).where(Spool.site_id == chosen,
                                                 Spool.archived.is_(False))
                             .order_by(Spool.material, Spool.id)))
    printers = list(db.scalars(select(Device).where(Device.site_id == chosen,
                                                    Device.kind == "printer")
                               .order_by(Device.id)))
    loaded_on = {d.spool_id: d for d in printers if d.spool_id}
    waiting = [j for j in db.scalars(select(Job).where(
        Job.site_id == chosen, Job.status == JobStatus.READY,
        Job.status_reason.is_not(None)).order_by(Job.id).limit(50))
        if (f := decode(j.status_reason)) is not None and f.code == FILAMENT_LOW]
    materials = {m.id: m for m in db.scalars(select(Material).where(
        Material.kind == "filament").order_by(Material.id))}
    return render(request, "staff_spools.html", user=user, sites=sites, site=chosen,
                  spools=spools, printers=printers, loaded_on=loaded_on, waiting=waiting,
                  materials=materials)
