"""Demo data for ``fabqueue serve --demo``: sites, one user per role, materials and simulated
machines, seeded once into an empty database so a newcomer can click through everything."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from fabqueue.queue.context import Context
from fabqueue.store import inventory
from fabqueue.store.models import User
from fabqueue.store.users import create_user

FILAMENTS = [
    {"id": "PLA", "kind": "filament", "name": "PLA", "density_g_cm3": 1.24, "price_per_kg": 20},
    {"id": "PETG", "kind": "filament", "name": "PETG", "density_g_cm3": 1.27,
     "price_per_kg": 24},
    {"id": "TPU", "kind": "filament", "name": "TPU 95A", "density_g_cm3": 1.21,
     "price_per_kg": 35},
]
SHEETS = [
    ("plywood-3mm", "Plywood 3 mm", 3, 4.0), ("plywood-4mm", "Plywood 4 mm", 4, 5.0),
    ("mdf-3mm", "MDF 3 mm", 3, 2.5), ("acrylic-3mm", "Cast acrylic 3 mm", 3, 12.0),
    ("cardboard", "Cardboard", 3, 0.5), ("paper", "Paper 160 g/m²", 0.2, 0.1),
    ("leather", "Leather", 2, 15.0),
]

DEMO_INVENTORY: dict[str, Any] = {
    "site": [
        {"id": "kc", "name": "Visagino kultūros centras"},
        {"id": "school-a", "name": "Mokykla A"},
        {"id": "school-b", "name": "Mokykla B"},
    ],
    # No names: the built-in library's (translated) names are shown for these ids.
    "material": [{k: v for k, v in f.items() if k != "name"} for f in FILAMENTS] + [
        {"id": i, "kind": "sheet", "thickness_mm": t, "price_per_sheet": p,
         "sheet_mm": (600, 400), "laser_material": i} for i, _n, t, p in SHEETS
    ],
    "device": [
        {"id": "mk4-1", "site": "kc", "name": "Prusa MK4 #1 (simulated)", "kind": "printer",
         "driver": "simulated", "build_volume_mm": (250, 210, 220),
         "materials": ["PLA", "PETG"], "profile": "prusa_mk4"},
        {"id": "mk4-2", "site": "kc", "name": "Prusa MK4 #2 (simulated)", "kind": "printer",
         "driver": "simulated", "build_volume_mm": (250, 210, 220),
         "materials": ["PLA", "PETG", "TPU"], "profile": "prusa_mk4"},
        {"id": "ender-a1", "site": "school-a", "name": "Ender-3 (simulated)",
         "kind": "printer", "driver": "simulated", "build_volume_mm": (220, 220, 250),
         "materials": ["PLA"], "profile": "ender3"},
        {"id": "generic-b1", "site": "school-b", "name": "Printer 220 (simulated)",
         "kind": "printer", "driver": "simulated", "build_volume_mm": (220, 220, 220),
         "materials": ["PLA", "PETG"], "profile": "generic_220"},
    ],
    # spools on the shelf (none loaded: a demo printer takes any job of its materials)
    "spool": [
        {"id": "kc-pla-1", "site": "kc", "material": "PLA", "colour": "orange",
         "brand": "Prusament", "net_g": 1000, "empty_g": 200, "remaining_g": 740,
         "place": "A1"},
        {"id": "kc-petg-1", "site": "kc", "material": "PETG", "colour": "black",
         "brand": "Prusament", "net_g": 1000, "empty_g": 200, "place": "A2"},
        {"id": "b-pla-1", "site": "school-b", "material": "PLA", "colour": "white",
         "net_g": 750, "empty_g": 180, "remaining_g": 120, "place": "B1"},
    ],
}

DEMO_USERS = [("admin", "admin", None), ("staff", "staff", "kc"),
              ("teacher", "teacher", "school-a"), ("resident", "resident", None)]


def laser_device(port: str) -> dict[str, Any]:
    """The demo laser: the real GRBL driver against the emulator on a pseudo-terminal."""
    return {"id": "laser-1", "site": "kc", "name": "Laser 600×400 (GRBL emulator)",
            "kind": "laser", "driver": "grbl", "port": port, "baud": 115200,
            "bed_mm": (600, 400), "max_power_s": 1000, "max_speed_mm_min": 6000,
            "materials": [s[0] for s in SHEETS]}


def seed_demo(ctx: Context, echo: Callable[[str], Any] = print,
              laser_port: str | None = None) -> bool:
    """Seed once; returns False (and changes nothing) when the database has users already."""
    with ctx.db.session() as s:
        if s.scalar(select(func.count()).select_from(User)):
            echo("demo: the database has users already; nothing seeded")
            return False
        doc = dict(DEMO_INVENTORY)
        if laser_port:
            doc = {**doc, "device": [*doc["device"], laser_device(laser_port)]}
        inventory.apply(s, doc)
        echo("demo users (passwords are shown only this once):")
        for name, role, site in DEMO_USERS:
            password = secrets.token_urlsafe(9)
            create_user(s, name, password, role, site)
            echo(f"  {role:9} {name:9} {password}")
    return True
