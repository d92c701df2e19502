"""Sites, machines and materials as a document (the TOML of ``fabqueue devices import`` and
the admin API share it). Re-importing updates what exists; secrets stay in the environment:
a device names the variable (``api_key_env``), never the key."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.orm import Session

from fabqueue.store.models import Device, Material, Site

SECRET_WORDS = ("api_key", "password", "secret", "token")


class SiteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str = Field("", max_length=200)
    colours: dict[str, str] | None = Field(
        None, description="laser colour convention, e.g. {'#ff0000': 'cut'}")


class MaterialIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.+-]+$")
    kind: Literal["filament", "sheet"]
    name: str = ""
    density_g_cm3: float | None = Field(None, gt=0, lt=25)
    price_per_kg: float | None = Field(None, ge=0)
    price_per_sheet: float | None = Field(None, ge=0)
    sheet_mm: tuple[float, float] | None = None
    thickness_mm: float | None = Field(None, gt=0, lt=100)
    laser_material: str | None = None

    @model_validator(mode="after")
    def _needs_numbers(self) -> MaterialIn:
        if self.kind == "filament" and self.density_g_cm3 is None:
            raise ValueError(f"filament {self.id} needs density_g_cm3")
        return self


class DeviceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    site: str
    name: str = ""
    kind: Literal["printer", "laser"]
    driver: Literal["octoprint", "grbl", "simulated"]
    build_volume_mm: tuple[float, float, float] | None = None
    bed_mm: tuple[float, float] | None = None
    materials: list[str] = Field(default_factory=list)
    profile: str | None = None
    printer_class: str | None = None
    # connection (no secrets)
    url: str | None = None
    api_key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    port: str | None = None
    baud: int | None = Field(None, gt=0)
    # laser settings
    max_power_s: float | None = Field(None, gt=0)
    max_speed_mm_min: float | None = Field(None, gt=0)
    homing: bool | None = None
    origin_mm: tuple[float, float] | None = None
    simulated_speed: float | None = Field(None, gt=0)
    enabled: bool = True

    @model_validator(mode="after")
    def _size_for_kind(self) -> DeviceIn:
        if self.kind == "printer" and not self.build_volume_mm:
            raise ValueError(f"printer {self.id} needs build_volume_mm = [x, y, z]")
        if self.kind == "laser" and not self.bed_mm:
            raise ValueError(f"laser {self.id} needs bed_mm = [width, height]")
        if self.driver == "octoprint" and not self.url:
            raise ValueError(f"device {self.id} uses OctoPrint and needs url")
        if self.driver == "grbl" and not self.port:
            raise ValueError(f"device {self.id} uses GRBL and needs port")
        if self.kind == "laser" and self.driver == "octoprint":
            raise ValueError(f"laser {self.id} can't use the octoprint driver")
        if self.kind == "printer" and self.driver == "grbl":
            raise ValueError(f"printer {self.id} can't use the grbl driver")
        return self

    def connection(self) -> dict[str, Any]:
        return {k: v for k, v in {"url": self.url, "api_key_env": self.api_key_env,
                                  "port": self.port, "baud": self.baud}.items()
                if v is not None}

    def settings(self) -> dict[str, Any]:
        return {k: v for k, v in {"max_power_s": self.max_power_s,
                                  "max_speed_mm_min": self.max_speed_mm_min,
                                  "homing": self.homing, "origin_mm": self.origin_mm,
                                  "simulated_speed": self.simulated_speed}.items()
                if v is not None}


class Inventory(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    site: list[SiteIn] = Field(default_factory=list)
    material: list[MaterialIn] = Field(default_factory=list)
    device: list[DeviceIn] = Field(default_factory=list)


def upsert_site(session: Session, s: SiteIn) -> str:
    row = session.get(Site, s.id)
    if row is None:
        session.add(Site(id=s.id, name=s.name or s.id, colour_map=s.colours))
        return "added"
    row.name = s.name or row.name
    if s.colours is not None:
        row.colour_map = s.colours
    return "updated"


def upsert_material(session: Session, m: MaterialIn) -> str:
    row = session.get(Material, m.id)
    new = row is None
    if row is None:
        row = Material(id=m.id, kind=m.kind)
        session.add(row)
    row.kind = m.kind
    row.name = m.name or m.id
    row.density_g_cm3 = m.density_g_cm3
    row.price_per_kg = m.price_per_kg
    row.price_per_sheet = m.price_per_sheet
    row.sheet_w_mm, row.sheet_h_mm = m.sheet_mm or (None, None)
    row.thickness_mm = m.thickness_mm
    row.laser_material = m.laser_material
    return "added" if new else "updated"


def upsert_device(session: Session, d: DeviceIn) -> str:
    if session.get(Site, d.site) is None:
        raise ValueError(f"device {d.id} names site {d.site!r}, which does not exist")
    row = session.get(Device, d.id)
    new = row is None
    if row is None:
        row = Device(id=d.id, site_id=d.site, kind=d.kind, driver=d.driver, size_mm=[])
        session.add(row)
    row.site_id = d.site
    row.name = d.name or d.id
    row.kind = d.kind
    row.driver = d.driver
    size = d.build_volume_mm if d.kind == "printer" else d.bed_mm
    row.size_mm = list(size or [])
    row.materials = list(d.materials)
    row.profile = d.profile
    row.printer_class = d.printer_class or d.profile or (
        "x".join(f"{v:g}" for v in size) if size else None)
    row.connection = d.connection()
    row.settings = d.settings()
    row.enabled = d.enabled
    return "added" if new else "updated"


def apply(session: Session, doc: dict[str, Any]) -> dict[str, list[str]]:
    """Apply an inventory document; returns what was added and updated, by id."""
    inv = Inventory.model_validate(doc)
    summary: dict[str, list[str]] = {"added": [], "updated": []}
    for s in inv.site:
        summary[upsert_site(session, s)].append(f"site {s.id}")
    session.flush()
    for m in inv.material:
        summary[upsert_material(session, m)].append(f"material {m.id}")
    for d in inv.device:
        summary[upsert_device(session, d)].append(f"device {d.id}")
    session.flush()
    return summary
