"""A first real installation, without ``--demo``: the README's devices file, one user, and
a resident's first print and first laser job are analysed (issue 11, "Done when").

The built-in material library (``fabqueue.store.material_library``) is what makes this
work: the README's file names ``PETG`` and ``acrylic-3mm`` without defining them."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import EXTERNAL, REPO, Stack, own_database, own_redis, sample
from tests.helpers import settled

# Again on the external pass: a fresh PostgreSQL database must hold the library too.
pytestmark = pytest.mark.stack

README_TOML = re.search(r"```toml\n(\[\[site\]\].*?)```",
                        (REPO / "README.md").read_text(encoding="utf-8"), re.S)


def fabqueue(data_dir: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("FABQUEUE_DATA_DIR", "DATABASE_URL", "REDIS_URL")}
    env.update(own_database(str(data_dir)))
    return subprocess.run([sys.executable, "-m", "fabqueue", *args, "--data-dir", str(data_dir)],
                          input=stdin, capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A data folder made only by the commands an operator runs, then the service on it."""
    from fabqueue.config import Settings
    from fabqueue.queue.context import Context, set_context
    from fabqueue.queue.embedded import EmbeddedRedis
    from fabqueue.web.app import create_app

    assert README_TOML, "README.md lost its example devices file"
    data_dir = tmp_path_factory.mktemp("fresh") / "data"
    lab = data_dir.parent / "lab.toml"
    lab.write_text(README_TOML.group(1), encoding="utf-8")
    r = fabqueue(data_dir, "devices", "import", str(lab))
    assert r.returncode == 0, r.stderr
    assert "added device mk4-1" in r.stdout and "added device laser-1" in r.stdout
    r = fabqueue(data_dir, "users", "add", "ruta", "--role", "resident", "--password-stdin",
                 stdin="first-day-password\n")
    assert r.returncode == 0, r.stderr

    env = {**os.environ, "FABQUEUE_DATA_DIR": str(data_dir)}
    env.pop("DATABASE_URL", None)
    env.update(own_database(str(data_dir)))
    owner = None
    if EXTERNAL:
        env.update(own_redis(12))
    else:
        owner = EmbeddedRedis(data_dir).start()
        env["REDIS_URL"] = owner.url
    ctx = Context(Settings(data_dir=data_dir, redis_url=env["REDIS_URL"],
                           database_url=env.get("DATABASE_URL")))
    ctx.db.migrate()
    ctx.install_publisher()
    set_context(ctx)
    stack = Stack(data_dir, ctx, create_app(ctx), env, owner,
                  passwords={"ruta": "first-day-password"})
    stack.start_worker("analysis,slicing")
    yield stack
    stack.stop_workers()
    if owner is not None:
        owner.stop()


#: A name tag drawn in the README's convention: red cut outline, black engraved square.
NAME_TAG = b"""<svg xmlns="http://www.w3.org/2000/svg" width="80mm" height="40mm"
 viewBox="0 0 80 40"><rect x="1" y="1" width="78" height="38" fill="none" stroke="#ff0000"
 stroke-width="0.1"/><rect x="10" y="10" width="20" height="20" fill="#000000"/></svg>"""


def upload(client: TestClient, headers: dict[str, str], name: str, data: bytes,
           material: str) -> Any:
    r = client.post("/api/jobs", headers=headers, data={"material": material},
                    files={"file": (name, io.BytesIO(data))})
    assert r.status_code == 201, r.text
    return settled(client, headers, r.json()["id"], timeout=120)


def test_a_resident_prints_a_cube_and_cuts_plywood_on_a_fresh_install(fresh: Stack) -> None:
    with fresh.client() as c:
        headers = fresh.token(c, "ruta")
        menu = {m["id"]: m for m in c.get("/api/materials", headers=headers).json()}
        # Built in, not in the file: the README's devices name them.
        assert {"PLA", "PETG", "TPU", "plywood-3mm", "acrylic-3mm"} <= set(menu)
        assert menu["PLA"]["nozzle_c"] == [210, 215] and menu["PLA"]["bed_c"] == [60, 60]
        # The file's own PLA (price 20) overrides the library's (the slicer profile's 25).
        assert menu["PLA"]["price_per_kg"] == 20.0
        cube = upload(c, headers, "cube.stl", sample("20mm-xyz-cube.stl").read_bytes(), "PLA")
        assert cube["status"] == "awaiting_approval", cube["analysis"]
        assert cube["analysis"]["material_g"] > 0
        svg = upload(c, headers, "tag.svg", NAME_TAG, "plywood-3mm")
        assert svg["status"] == "awaiting_approval", svg["analysis"]
        # The upload page offers both kinds, in the reader's language.
        page = c.get("/", headers={**headers, "Accept-Language": "lt"}).text
        assert 'value="plywood-3mm"' in page and 'value="PLA"' in page


def test_seeding_again_adds_nothing_and_keeps_overrides(fresh: Stack) -> None:
    from fabqueue.store.inventory import seed_materials as seed
    from fabqueue.store.models import Material

    with fresh.ctx.db.session() as s:
        assert seed(s) == []
        assert s.get(Material, "PLA").price_per_kg == 20.0  # type: ignore[union-attr]


def test_import_refuses_a_material_no_one_defined(tmp_path: Path) -> None:
    assert README_TOML
    lab = tmp_path / "lab.toml"
    lab.write_text(README_TOML.group(1).replace('"PLA", "PETG"', '"PLA", "unobtainium"'),
                   encoding="utf-8")
    r = fabqueue(tmp_path / "data", "devices", "import", str(lab))
    assert r.returncode == 2
    assert "unobtainium" in r.stderr and "which no one defined" in r.stderr
    assert "PETG" in r.stderr and "plywood-4mm" in r.stderr  # the known ones are listed
    assert "Traceback" not in r.stderr
