"""Sites, machines and materials as a document (the TOML of ``fabqueue devices import`` and
the admin API share it). Re-importing updates what exists; secrets stay in the environment:
a device names the variable (``api_key_env``), never the key."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabqueue.core.device_secrets import secret_name_problem
from fabqueue.store.material_doc import MaterialIn
from fabqueue.store.material_library import builtin_by_id
from fabqueue.store.models import Device, Material, Site
from fabqueue.store.spools import SpoolIn
from fabqueue.store.trainings_file import MaintenanceIn, TrainingIn

SECRET_WORDS = ("api_key", "password", "secret", "token")


class SiteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str = Field("", max_length=200)
    colours: dict[str, str] | None = Field(
        None, description="laser colour convention, e.g. {'#ff0000': 'cut'}")
    # pickup shelf places in the order they are filled: places = ["A1", "A2", "B1"]
    places: list[str] | None = Field(None, max_length=500)
    # staff notification channels: Apprise URLs (ntfy://…, tgram://…, mailto://…)
    apprise_urls: list[str] | None = Field(None, max_length=20)
    quiet_hours: str | None = Field(None, description="e.g. '21:00-08:00', or 'off'")

    @model_validator(mode="after")
    def _pickup_and_quiet(self) -> SiteIn:
        from fabqueue.core.pickup import check_places
        from fabqueue.core.quiet import parse_span

        if self.places is not None:
            self.places = check_places(self.places)
        parse_span(self.quiet_hours)  # raises with what a good value looks like
        return self


class DeviceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    site: str
    name: str = ""
    kind: Literal["printer", "laser"]
    driver: Literal["octoprint", "grbl", "simulated", "moonraker", "prusalink", "bambu"]
    build_volume_mm: tuple[float, float, float] | None = None
    bed_mm: tuple[float, float] | None = None
    materials: list[str] = Field(default_factory=list)
    profile: str | None = None
    printer_class: str | None = None
    # connection (no secrets)
    url: str | None = None
    api_key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    # PrusaLink: digest auth (user "maker") with this variable's password, if no api_key_env
    password_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    port: str | None = None
    baud: int | None = Field(None, gt=0)
    # Bambu Lab (LAN mode): host (or url), serial, the access code's variable, test ports
    host: str | None = Field(None, max_length=253, pattern=r"^[A-Za-z0-9.:\[\]-]+$")
    serial: str | None = Field(None, max_length=32, pattern=r"^[A-Za-z0-9]+$")
    access_code_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    mqtt_port: int | None = Field(None, gt=0, lt=65536)
    ftps_port: int | None = Field(None, gt=0, lt=65536)
    ca_file: str | None = None
    # laser settings
    max_power_s: float | None = Field(None, gt=0)
    max_speed_mm_min: float | None = Field(None, gt=0)
    homing: bool | None = None
    origin_mm: tuple[float, float] | None = None
    # the controller's motion settings, for time estimates: {"$110" = 6000, "$120" = 800}
    grbl: dict[str, float] | None = None
    simulated_speed: float | None = Field(None, gt=0)
    enabled: bool = True

    @field_validator("api_key_env", "password_env", "access_code_env")
    @classmethod
    def _device_key_variable(cls, name: str | None) -> str | None:
        # the worker sends this variable's value to the device's URL: never a FabQueue setting
        problem = secret_name_problem(name) if name else None
        if problem:
            raise ValueError(problem)
        return name

    @model_validator(mode="after")
    def _size_for_kind(self) -> DeviceIn:
        if self.kind == "printer" and not self.build_volume_mm:
            raise ValueError(f"printer {self.id} needs build_volume_mm = [x, y, z]")
        if self.kind == "laser" and not self.bed_mm:
            raise ValueError(f"laser {self.id} needs bed_mm = [width, height]")
        if self.driver == "octoprint" and not self.url:
            raise ValueError(f"device {self.id} uses OctoPrint and needs url")
        if self.driver == "moonraker" and not self.url:
            raise ValueError(f"device {self.id} uses Moonraker and needs url")
        if self.kind == "laser" and self.driver == "moonraker":
            raise ValueError(f"laser {self.id} can't use the moonraker driver")
        if self.driver == "bambu" and not ((self.host or self.url) and self.serial
                                           and self.access_code_env):
            raise ValueError(f"device {self.id} uses Bambu and needs host, serial and "
                             "access_code_env")
        if self.kind == "laser" and self.driver == "bambu":
            raise ValueError(f"laser {self.id} can't use the bambu driver")
        if self.driver == "prusalink" and not self.url:
            raise ValueError(f"device {self.id} uses PrusaLink and needs url")
        if self.kind == "laser" and self.driver == "prusalink":
            raise ValueError(f"laser {self.id} can't use the prusalink driver")
        if self.driver == "grbl" and not self.port:
            raise ValueError(f"device {self.id} uses GRBL and needs port")
        if self.kind == "laser" and self.driver == "octoprint":
            raise ValueError(f"laser {self.id} can't use the octoprint driver")
        if self.kind == "printer" and self.driver == "grbl":
            raise ValueError(f"printer {self.id} can't use the grbl driver")
        bad = [k for k in self.grbl or {} if k not in ("$11", "$110", "$111", "$120", "$121")]
        if bad:
            raise ValueError(f"laser {self.id}: grbl settings {bad} are not used; "
                             "give $11, $110, $111, $120 or $121")
        return self

    def connection(self) -> dict[str, Any]:
        return {k: v for k, v in {"url": self.url, "api_key_env": self.api_key_env,
                                  "password_env": self.password_env,
                                  "port": self.port, "baud": self.baud,
                                  "host": self.host, "serial": self.serial,
                                  "access_code_env": self.access_code_env,
                                  "mqtt_port": self.mqtt_port, "ftps_port": self.ftps_port,
                                  "ca_file": self.ca_file}.items()
                if v is not None}

    def settings(self) -> dict[str, Any]:
        return {k: v for k, v in {"max_power_s": self.max_power_s,
                                  "max_speed_mm_min": self.max_speed_mm_min,
                                  "homing": self.homing, "origin_mm": self.origin_mm,
                                  "simulated_speed": self.simulated_speed,
                                  **(self.grbl or {})}.items()
                if v is not None}


class Inventory(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    site: list[SiteIn] = Field(default_factory=list)
    material: list[MaterialIn] = Field(default_factory=list)
    device: list[DeviceIn] = Field(default_factory=list)
    # who may run which machine, and when it needs service (fabqueue.store.trainings_file)
    training: list[TrainingIn] = Field(default_factory=list)
    maintenance: list[MaintenanceIn] = Field(default_factory=list)
    # a first import of the spools on the shelves (fabqueue.store.spools)
    spool: list[SpoolIn] = Field(default_factory=list)


def upsert_site(session: Session, s: SiteIn) -> str:
    row = session.get(Site, s.id)
    if row is None:
        session.add(Site(id=s.id, name=s.name or s.id, colour_map=s.colours, places=s.places,
                         apprise_urls=s.apprise_urls, quiet_hours=s.quiet_hours))
        return "added"
    row.name = s.name or row.name
    if s.colours is not None:
        row.colour_map = s.colours
    for key in ("places", "apprise_urls", "quiet_hours"):  # pickup and notifications
        if getattr(s, key) is not None:
            setattr(row, key, getattr(s, key))
    return "updated"


def with_builtin_defaults(m: MaterialIn) -> MaterialIn:
    """A built-in material named in a file keeps the library's values for what it omits
    (a site sets its own price and still gets the print temperatures)."""
    base = builtin_by_id().get(m.id)
    if base is None or base.kind != m.kind:
        return m
    given = m.model_dump(include=m.model_fields_set - {"id"}, exclude_none=True)
    return base.model_copy(update=given)


def upsert_material(session: Session, m: MaterialIn) -> str:
    m = with_builtin_defaults(m)
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
    row.nozzle_c_min, row.nozzle_c_max = m.nozzle_c or (None, None)
    row.bed_c_min, row.bed_c_max = m.bed_c or (None, None)
    return "added" if new else "updated"


def seed_materials(session: Session) -> list[str]:
    """Add the built-in materials this database lacks; returns their ids (idempotent).
    Rows that exist (devices file, admin page) are never overwritten."""
    have = set(session.scalars(select(Material.id)))
    added = []
    for m in builtin_by_id().values():
        if m.id not in have:
            upsert_material(session, m)
            added.append(m.id)
    session.flush()
    return added


def check_device_materials(session: Session, d: DeviceIn) -> None:
    """A machine may only offer materials someone defined (built in, devices file, admin):
    otherwise every upload for it would be refused with an empty choice."""
    known = set(session.scalars(select(Material.id)))
    unknown = [m for m in d.materials if m not in known]
    if unknown:
        raise ValueError(
            f"device {d.id} names material(s) {', '.join(unknown)}, which no one defined; "
            f"known materials: {', '.join(sorted(known)) or 'none'} "
            "(add a [[material]] table for the others)")


def upsert_device(session: Session, d: DeviceIn) -> str:
    if session.get(Site, d.site) is None:
        raise ValueError(f"device {d.id} names site {d.site!r}, which does not exist")
    check_device_materials(session, d)
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
    session.flush()
    for d in inv.device:
        summary[upsert_device(session, d)].append(f"device {d.id}")
    session.flush()
    if inv.training or inv.maintenance:
        from fabqueue.store import trainings_file

        for k, v in trainings_file.apply(session, inv.training, inv.maintenance).items():
            summary[k].extend(v)
    if inv.spool:
        from fabqueue.store.spools import upsert_spool

        for sp in inv.spool:
            summary[upsert_spool(session, sp)[0]].append(f"spool {sp.id or sp.material}")
        session.flush()
    return summary
