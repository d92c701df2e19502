"""``/api/materials``: filaments and sheet stock with their prices (admin edits)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabqueue.store.inventory import MaterialIn, upsert_material
from fabqueue.store.models import Material, User
from fabqueue.web.deps import admin_user, current_user, get_db

router = APIRouter(prefix="/api/materials", tags=["materials"])


def material_out(m: Material) -> dict[str, Any]:
    return {"id": m.id, "kind": m.kind, "name": m.name, "density_g_cm3": m.density_g_cm3,
            "price_per_kg": m.price_per_kg, "price_per_sheet": m.price_per_sheet,
            "sheet_mm": [m.sheet_w_mm, m.sheet_h_mm] if m.sheet_w_mm else None,
            "thickness_mm": m.thickness_mm, "laser_material": m.laser_material,
            "nozzle_c": [m.nozzle_c_min, m.nozzle_c_max] if m.nozzle_c_min else None,
            "bed_c": [m.bed_c_min, m.bed_c_max] if m.bed_c_min is not None else None}


@router.get("")
def _handle_list(user: User = Depends(current_user),
                 db: Session = Depends(get_db, scope="function")) -> list[dict[str, Any]]:
    return [material_out(m) for m in db.scalars(select(Material).order_by(Material.id))]


@router.put("/{material_id}")
def _handle_put(material_id: str, body: MaterialIn, user: User = Depends(admin_user),
                db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    body.id = material_id
    upsert_material(db, body)
    db.flush()
    return material_out(db.get(Material, material_id))  # type: ignore[arg-type]
