"""``/api/sites``: the lab's sites (admin edits)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabqueue.store.inventory import SiteIn, upsert_site
from fabqueue.store.models import Site, User
from fabqueue.web.deps import admin_user, current_user, get_db

router = APIRouter(prefix="/api/sites", tags=["sites"])


def site_out(s: Site) -> dict[str, Any]:
    return {"id": s.id, "name": s.name, "colours": s.colour_map}


@router.get("")
def _handle_list(user: User = Depends(current_user),
                 db: Session = Depends(get_db, scope="function")) -> list[dict[str, Any]]:
    return [site_out(s) for s in db.scalars(select(Site).order_by(Site.id))]


@router.put("/{site_id}")
def _handle_put(site_id: str, body: SiteIn, user: User = Depends(admin_user),
                db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    body.id = site_id
    upsert_site(db, body)
    db.flush()
    return site_out(db.get(Site, site_id))  # type: ignore[arg-type]
