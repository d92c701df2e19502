"""Admin pages: users (invite, role, site, quota, disable), sites, machines, materials."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabqueue.core.access import Role
from fabqueue.store.inventory import DeviceIn, MaterialIn, upsert_device, upsert_material
from fabqueue.store.models import Device, Material, Site, User
from fabqueue.store.users import AccountError, check_membership, create_user, revoke_sign_ins
from fabqueue.web.deps import get_db, optional_user
from fabqueue.web.pages.common import committed_redirect, error_page, redirect, require_csrf
from fabqueue.web.pages.render import render
from fabqueue.web.params import IdPath

router = APIRouter(include_in_schema=False)
ROLES = [r.value for r in Role]


def _number(raw: str) -> float | None:
    try:
        value = float(raw.replace(",", "."))
    except ValueError:
        return None
    return value if value >= 0 else None


def _admin_or_error(request: Request, user: User | None) -> Response | None:
    if user is None:
        return redirect("/login")
    if user.role != Role.ADMIN:
        return error_page(request, user, 403, "Only an administrator can do this.")
    return None


def _page(request: Request, user: User, db: Session, status_code: int = 200,
          **extra: object) -> Response:
    return render(request, "admin.html", status_code=status_code, user=user, roles=ROLES,
                  users=list(db.scalars(select(User).order_by(User.name))),
                  sites=list(db.scalars(select(Site).order_by(Site.id))),
                  devices=list(db.scalars(select(Device).order_by(Device.site_id, Device.id))),
                  materials=list(db.scalars(select(Material).order_by(Material.kind,
                                                                      Material.id))),
                  **extra)


@router.get("/admin")
def admin_page(request: Request, user: User | None = Depends(optional_user),
               db: Session = Depends(get_db, scope="function")) -> Response:
    if (denied := _admin_or_error(request, user)) is not None:
        return denied
    assert user is not None
    return _page(request, user, db)


@router.post("/admin/users")
def invite(request: Request, name: str = Form(...), role: str = Form("resident"),
           site: str = Form(""), email: str = Form(""), csrf_token: str = Form(""),
           user: User | None = Depends(optional_user),
           db: Session = Depends(get_db, scope="function")) -> Response:
    """A new account with a one-time password shown once, to hand to the person."""
    if (denied := _admin_or_error(request, user)) is not None:
        return denied
    assert user is not None
    require_csrf(request, csrf_token)
    password = secrets.token_urlsafe(9)
    try:
        new = create_user(db, name, password, role if role in ROLES else "resident",
                          site or None, email or None)
    except AccountError as exc:
        return _page(request, user, db, problem=str(exc))
    db.flush()
    return _page(request, user, db, invited=new.name, password=password)


@router.post("/admin/users/{user_id}")
def edit_user(user_id: IdPath, request: Request, role: str = Form(...), site: str = Form(""),
              quota: str = Form(""), disabled: str = Form(""), csrf_token: str = Form(""),
              user: User | None = Depends(optional_user),
              db: Session = Depends(get_db, scope="function")) -> Response:
    if (denied := _admin_or_error(request, user)) is not None:
        return denied
    require_csrf(request, csrf_token)
    assert user is not None
    target = db.get(User, user_id)
    if target is not None:
        try:  # the same rule as the API and the CLI: staff and teachers have a site
            role_, site_id = check_membership(db, role if role in ROLES else target.role, site)
        except AccountError as exc:
            return _page(request, user, db, status_code=422, problem=str(exc))
        target.role, target.site_id = role_.value, site_id
        target.quota_g_month = _number(quota) if quota.strip() else None
        disable = bool(disabled) and target.id != user.id
        if disable and not target.disabled:
            revoke_sign_ins(target)
        target.disabled = disable
    return committed_redirect(db, "/admin#users")


@router.post("/admin/sites")
def save_site(request: Request, site_id: str = Form(...), name: str = Form(...),
              csrf_token: str = Form(""), user: User | None = Depends(optional_user),
              db: Session = Depends(get_db, scope="function")) -> Response:
    if (denied := _admin_or_error(request, user)) is not None:
        return denied
    require_csrf(request, csrf_token)
    site_id = site_id.strip()[:64]
    if site_id:
        site = db.get(Site, site_id) or Site(id=site_id, name=name)
        site.name = name.strip()[:200] or site_id
        db.add(site)
    return committed_redirect(db, "/admin#sites")


@router.post("/admin/materials")
def add_material(request: Request, material_id: str = Form(...), kind: str = Form("filament"),
                 name: str = Form(""), density: str = Form(""), price: str = Form(""),
                 thickness: str = Form(""), sheet: str = Form(""), csrf_token: str = Form(""),
                 user: User | None = Depends(optional_user),
                 db: Session = Depends(get_db, scope="function")) -> Response:
    """Add (or replace) a material beside the built-in ones, with the devices file's checks."""
    if (denied := _admin_or_error(request, user)) is not None:
        return denied
    assert user is not None
    require_csrf(request, csrf_token)
    dims = [v for v in (_number(p) for p in sheet.replace("×", "x").split("x")) if v]
    doc = {"id": material_id.strip(), "kind": kind, "name": name.strip(),
           "density_g_cm3": _number(density), "thickness_mm": _number(thickness),
           "sheet_mm": dims or None,
           ("price_per_kg" if kind == "filament" else "price_per_sheet"): _number(price)}
    try:
        upsert_material(db, MaterialIn.model_validate(doc))
    except (ValidationError, ValueError) as exc:
        errors = exc.errors() if isinstance(exc, ValidationError) else None
        message = "; ".join(str(e.get("msg")) for e in errors) if errors else str(exc)
        return _page(request, user, db, status_code=422, material_error=message)
    return committed_redirect(db, "/admin#materials")


@router.post("/admin/materials/{material_id}")
def save_material(material_id: str, request: Request, price: str = Form(""),
                  csrf_token: str = Form(""), user: User | None = Depends(optional_user),
                  db: Session = Depends(get_db, scope="function")) -> Response:
    if (denied := _admin_or_error(request, user)) is not None:
        return denied
    require_csrf(request, csrf_token)
    m = db.get(Material, material_id)
    value = _number(price)
    if m is not None and value is not None:
        if m.kind == "filament":
            m.price_per_kg = value
        else:
            m.price_per_sheet = value
    return committed_redirect(db, "/admin#materials")


@router.post("/admin/devices")
def save_device(request: Request, device_id: str = Form(...), site: str = Form(...),
                name: str = Form(""), kind: str = Form("printer"),
                driver: str = Form("simulated"), size: str = Form(...),
                materials: str = Form(""), profile: str = Form(""), url: str = Form(""),
                api_key_env: str = Form(""), port: str = Form(""),
                serial: str = Form(""), access_code_env: str = Form(""),
                csrf_token: str = Form(""), user: User | None = Depends(optional_user),
                db: Session = Depends(get_db, scope="function")) -> Response:
    """Add or change a machine: the same checks as ``fabqueue devices import``."""
    if (denied := _admin_or_error(request, user)) is not None:
        return denied
    require_csrf(request, csrf_token)
    dims = [v for v in (_number(p) for p in size.replace("×", "x").split("x")) if v]
    doc = {"id": device_id.strip(), "site": site, "name": name.strip(), "kind": kind,
           "driver": driver, "materials": [m.strip() for m in materials.split(",") if m.strip()],
           "profile": profile.strip() or None, "url": url.strip() or None,
           "api_key_env": api_key_env.strip() or None, "port": port.strip() or None,
           ("build_volume_mm" if kind == "printer" else "bed_mm"): dims}
    if driver == "bambu":  # the address field holds the printer's host
        doc.update(serial=serial.strip() or None,
                   access_code_env=access_code_env.strip() or None)
    try:
        upsert_device(db, DeviceIn.model_validate(doc))
    except (ValidationError, ValueError) as exc:
        errors = exc.errors() if isinstance(exc, ValidationError) else None
        message = "; ".join(str(e.get("msg")) for e in errors) if errors else str(exc)
        return _page(request, user, db, status_code=422, device_error=message)
    return committed_redirect(db, "/admin#devices")
