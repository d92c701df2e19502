"""Uploads through the API and their analysis by the real worker: good files of every kind,
and every kind of bad or hostile file, each ending with a clear reason while the worker keeps
serving."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trimesh
from fastapi.testclient import TestClient

from tests.conftest import Stack, sample, stop_process, wait_for
from tests.helpers import (
    analysed,
    cube_stl,
    english_client,
    login,
    settled,
    upload,
    zip_bomb,
    zip_bytes,
)

CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
    b'package/2006/content-types"><Default Extension="model" ContentType="application/'
    b'vnd.ms-package.3dmanufacturing-3dmodel+xml"/></Types>'
)
SQUARE_SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" width="50mm" height="40mm" '
              b'viewBox="0 0 50 40"><rect x="5" y="5" width="30" height="20" fill="none" '
              b'stroke="#ff0000"/></svg>')


@pytest.fixture
def svg_site(stack: Stack) -> str:
    """A site of these tests' own that cuts red strokes, with a laser for plywood: an upload
    without a site goes to the first site whose laser takes the material, and the tests run
    before these (in this process) may have added sites, lasers and colour conventions."""
    import secrets

    from fabqueue.store.inventory import apply

    site = f"svg{secrets.token_hex(3)}"
    with stack.ctx.db.session() as s:
        apply(s, {"site": [{"id": site, "name": "svg", "colours": {"#ff0000": "cut"}}],
                  "device": [{"id": f"{site}-las", "site": site, "kind": "laser",
                              "driver": "grbl", "port": "/x", "bed_mm": (600, 400),
                              "materials": ["plywood-3mm"]}]})
    return site


@pytest.fixture
def client(stack: Stack) -> TestClient:
    return english_client(stack)


@pytest.fixture(scope="module")
def resident(stack: Stack) -> dict[str, str]:
    with stack.client() as c:
        return login(stack, c, "resident")


@pytest.fixture(scope="module")
def staff(stack: Stack) -> dict[str, str]:
    with stack.client() as c:
        return login(stack, c, "staff", "kc")


def binary_stl(triangles: np.ndarray, count: int | None = None) -> bytes:
    """A binary STL of (n, 3, 3) triangles; ``count`` overrides the header's count."""
    records = np.zeros(len(triangles), dtype=[("n", "<f4", (3,)), ("v", "<f4", (3, 3)),
                                              ("a", "<u2")])
    records["v"] = triangles
    n = len(triangles) if count is None else count
    return b"fabqueue api test".ljust(80) + struct.pack("<I", n) + records.tobytes()


def box_triangles(size: float = 20.0) -> np.ndarray:
    box = trimesh.creation.box((size, size, size))
    return box.vertices[box.faces].astype(np.float32)


def expect_invalid(client: TestClient, headers: dict[str, str], name: str, data: bytes,
                   code: str | None = None, material: str = "PLA") -> dict[str, Any]:
    """Upload; the job must end ``invalid`` with reasons in words and a status_reason."""
    job = analysed(client, headers, name, data, material)
    assert job["status"] == "invalid", job
    analysis = job["analysis"]
    assert analysis["ok"] is False
    assert analysis["errors"] and all(isinstance(e, str) and len(e) > 10 and "{" not in e
                                      for e in analysis["errors"]), analysis["errors"]
    assert job["status_reason"] and "{" not in job["status_reason"]
    if code is not None:
        assert code in analysis["error_codes"], analysis
    return job


def still_serving(client: TestClient, headers: dict[str, str]) -> None:
    job = analysed(client, headers, "after.stl", cube_stl(12))
    assert job["status"] == "awaiting_approval", job


# -- good files ---------------------------------------------------------------------------


def test_sample_cube_is_analysed_with_thumbnail(client: TestClient,
                                                resident: dict[str, str]) -> None:
    data = sample("20mm-xyz-cube.stl").read_bytes()
    r = upload(client, resident, "20mm-xyz-cube.stl", data, copies=2, note="for the shelf")
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["status"] == "analyzing" and created["copies"] == 2
    assert created["note"] == "for the shelf" and created["kind"] == "print"
    job = settled(client, resident, created["id"])
    a = job["analysis"]
    assert job["status"] == "awaiting_approval", a
    assert a["volume_cm3"] == pytest.approx(7.94, rel=0.01)
    assert a["bodies"] == 1 and a["watertight"] is True
    assert a["bbox_mm"] == pytest.approx([20, 20, 20], abs=0.1)
    for key in ("material_g", "filament_m", "estimated_seconds", "cost"):
        assert a[key] > 0, key
    assert set(a["fits"]) >= {"mk4-1", "mk4-2"}
    thumb = client.get(job["thumbnail_url"], headers=resident)
    assert thumb.status_code == 200
    assert thumb.headers["content-type"] == "image/png"
    assert thumb.content.startswith(b"\x89PNG\r\n\x1a\n")
    original = client.get(job["file_url"], headers=resident)
    assert original.status_code == 200 and original.content == data
    assert original.headers["content-disposition"].startswith("attachment")


def good_files() -> Iterator[tuple[str, bytes, float]]:
    box = trimesh.creation.box((30, 20, 10))  # 6 cm³
    yield "box-binary.stl", box.export(file_type="stl"), 6.0
    yield "box-ascii.stl", box.export(file_type="stl_ascii").encode(), 6.0
    yield "box.3mf", box.export(file_type="3mf"), 6.0
    yield "box.obj", box.export(file_type="obj").encode(), 6.0


@pytest.mark.parametrize(("name", "data", "volume"), list(good_files()),
                         ids=["stl-binary", "stl-ascii", "3mf", "obj"])
def test_mesh_formats(client: TestClient, resident: dict[str, str], name: str, data: bytes,
                      volume: float) -> None:
    job = analysed(client, resident, name, data)
    assert job["status"] == "awaiting_approval", job["analysis"]
    assert job["kind"] == "print" and job["file_format"] == name.rsplit(".", 1)[1]
    assert job["analysis"]["volume_cm3"] == pytest.approx(volume, rel=0.01)
    assert job["analysis"]["bbox_mm"] == pytest.approx([30, 20, 10], abs=0.1)


def test_svg_makes_a_laser_job(client: TestClient, resident: dict[str, str],
                               svg_site: str) -> None:
    job = analysed(client, resident, "box.svg", SQUARE_SVG, material="plywood-3mm",
                   site=svg_site)
    assert job["kind"] == "laser"
    assert job["status"] == "awaiting_approval", job  # (the whole job says why when not)
    a = job["analysis"]
    assert a["size_mm"] == pytest.approx([30, 20], abs=0.5)  # what is cut, in mm
    assert a["cut_length_mm"] == pytest.approx(100, rel=0.01)
    assert [op["operation"] for op in a["operations"]] == ["cut"]
    # the drawing comes back as a download, never rendered in FabQueue's origin
    got = client.get(job["file_url"], headers=resident)
    assert got.content == SQUARE_SVG
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["content-disposition"].startswith("attachment")
    assert got.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in got.headers["content-security-policy"]


def test_svg_with_a_print_material_is_refused(client: TestClient,
                                              resident: dict[str, str]) -> None:
    r = upload(client, resident, "box.svg", SQUARE_SVG, material="PLA")
    assert r.status_code == 422
    assert "plywood-3mm" in r.json()["detail"]


GCODE = b"; generated by hand\nG28\nG1 X10 Y10 Z0.2 F3000\nG1 X20 E1.0\nM104 S0\n"


def test_gcode_from_a_resident_is_refused(client: TestClient, resident: dict[str, str]) -> None:
    r = upload(client, resident, "part.gcode", GCODE)
    assert r.status_code == 403
    assert "staff" in r.json()["detail"]


def test_gcode_from_staff_is_accepted(client: TestClient, staff: dict[str, str]) -> None:
    r = upload(client, staff, "part.gcode", GCODE)
    assert r.status_code == 201, r.text
    assert r.json()["file_format"] == "gcode"
    job = settled(client, staff, r.json()["id"])
    assert job["status"] in ("awaiting_approval", "invalid")
    assert job["analysis"] is not None


# -- bad and hostile files ------------------------------------------------------------------


def test_empty_file_is_refused_at_upload(client: TestClient, resident: dict[str, str]) -> None:
    r = upload(client, resident, "empty.stl", b"")
    assert r.status_code == 422
    assert "empty" in r.json()["detail"]


def hostile_meshes() -> Iterator[tuple[str, str, bytes, str]]:
    cube = box_triangles()
    yield "truncated", "cut.stl", binary_stl(cube)[:-30], "truncated_stl"
    yield "header-lies", "liar.stl", binary_stl(cube, count=1_000_000), "truncated_stl"
    facet = (b"facet normal 0 0 1\nouter loop\nvertex 1 2 x\nvertex 1 2 3\nvertex 4 5 6\n"
             b"endloop\nendfacet\n")
    yield "ascii-garbage", "junk.stl", b"solid junk\n" + facet * 3 + b"endsolid junk\n", \
        "unreadable_file"
    nan = cube.copy()
    nan[3, 1, 2] = np.nan
    yield "nan", "nan.stl", binary_stl(nan), "nan_coordinates"
    flat = np.array([[[0, 0, 0], [10, 0, 0], [10, 10, 0]], [[0, 0, 0], [10, 10, 0], [0, 10, 0]]],
                    dtype=np.float32)
    yield "flat", "flat.stl", binary_stl(flat), "flat_mesh"
    soup = np.random.default_rng(7).uniform(0, 30, (200, 3, 3)).astype(np.float32)
    yield "soup", "soup.stl", binary_stl(soup), "triangle_soup"
    model = trimesh.creation.box((10, 10, 10)).export(file_type="3mf")
    with zipfile.ZipFile(io.BytesIO(model)) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    yield "3mf-escape", "escape.3mf", zip_bytes({**members, "../../evil.model": b"x"}), \
        "unsafe_archive_path"
    yield "3mf-bomb", "bomb.3mf", zip_bomb(), "zip_bomb"


@pytest.mark.parametrize(("name", "data", "code"),
                         [p[1:] for p in hostile_meshes()],
                         ids=[p[0] for p in hostile_meshes()])
def test_bad_mesh_becomes_invalid_and_worker_keeps_serving(
        client: TestClient, resident: dict[str, str], name: str, data: bytes, code: str) -> None:
    expect_invalid(client, resident, name, data, code)
    still_serving(client, resident)


def test_zip_bomb_is_small_and_announces_a_gigabyte() -> None:
    data = zip_bomb()
    assert len(data) < 2 * 1024 * 1024
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.getinfo("3D/3dmodel.model").file_size == 1024 ** 3


XXE_SVG = (b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
           b'<svg xmlns="http://www.w3.org/2000/svg" width="50mm" height="40mm">'
           b'<text>&xxe;</text><rect width="10" height="10" stroke="#ff0000" fill="none"/>'
           b'</svg>')
LAUGHS_SVG = (b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "lollollollollol">'
              + b"".join(b'<!ENTITY %s "%s">' % (chr(98 + i).encode(),
                                                 (b"&" + chr(97 + i).encode() + b";") * 10)
                         for i in range(9))
              + b']><svg xmlns="http://www.w3.org/2000/svg" width="50mm" height="40mm">'
                b'<text>&j;</text></svg>')


@pytest.mark.parametrize("data", [XXE_SVG, LAUGHS_SVG], ids=["xxe", "billion-laughs"])
def test_svg_entities_are_refused(client: TestClient, resident: dict[str, str],
                                  data: bytes) -> None:
    job = expect_invalid(client, resident, "evil.svg", data, "svg_entities",
                         material="plywood-3mm")
    assert "root:" not in str(job)  # nothing from /etc/passwd leaked into the answer
    still_serving(client, resident)


def test_svg_without_units_warns_with_the_assumption(client: TestClient,
                                                     resident: dict[str, str],
                                                     svg_site: str) -> None:
    data = (b'<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100">'
            b'<rect x="10" y="10" width="100" height="50" fill="none" stroke="#ff0000"/></svg>')
    job = analysed(client, resident, "nounits.svg", data, material="plywood-3mm",
                   site=svg_site)
    assert job["status"] == "awaiting_approval", job
    a = job["analysis"]
    assert a["warnings"], a
    # the 100 × 50 rectangle's user units read as CSS pixels (96 per inch)
    assert a["size_mm"] == pytest.approx([100 * 25.4 / 96, 50 * 25.4 / 96], rel=0.01)


@pytest.mark.parametrize("name", ["setup.exe", "notes.txt", "model", "model.stl.exe"])
def test_wrong_extension_is_415(client: TestClient, resident: dict[str, str], name: str) -> None:
    r = upload(client, resident, name, b"MZ\x90\x00" * 10)
    assert r.status_code == 415
    assert "STL" in r.json()["detail"]


def stored_files(stack: Stack) -> set[Path]:
    """What the store keeps (its tmp folder holds the worker's scratch space too)."""
    return {p for p in stack.ctx.files.root.rglob("*")
            if p.is_file() and stack.ctx.files.tmp not in p.parents}


def test_oversize_upload_is_413_and_leaves_nothing(stack: Stack, client: TestClient,
                                                  resident: dict[str, str]) -> None:
    settings = stack.ctx.settings
    old = settings.max_upload_bytes
    before = stored_files(stack)
    settings.max_upload_bytes = 50_000
    try:
        # declared length over the limit: refused before reading
        r = upload(client, resident, "big.stl", bytes(200_000))
        assert r.status_code == 413, r.text
        assert "limit" in r.json()["detail"]
        # a length that fits the declared-length slack but not the limit: refused mid-stream
        r = upload(client, resident, "big.stl", bytes(60_000))
        assert r.status_code == 413, r.text
    finally:
        settings.max_upload_bytes = old
    assert list(stack.ctx.files.tmp.glob("up-*")) == []  # no half-written upload
    assert stored_files(stack) == before


def start_limited_worker(stack: Stack, **env: str) -> subprocess.Popen[bytes]:
    log = open(stack.data_dir / "limited-worker.log", "ab")  # noqa: SIM115
    # analysis only: a slicing job left by an earlier test must not hold the analysis up
    return subprocess.Popen([sys.executable, "-m", "fabqueue", "worker", "--queues", "analysis"],
                            env={**stack.env, **env}, stdout=log, stderr=subprocess.STDOUT)


def test_triangle_limit_refuses_before_loading(stack: Stack, client: TestClient,
                                               resident: dict[str, str]) -> None:
    """The worker's own limit (its environment): only the dedicated worker runs meanwhile."""
    stack.stop_workers()
    worker = start_limited_worker(stack, FABQUEUE_MAX_TRIANGLES="100")
    try:
        big = trimesh.creation.icosphere(subdivisions=3, radius=10)  # 1280 triangles
        job = expect_invalid(client, resident, "sphere.stl", big.export(file_type="stl"),
                             "too_many_triangles")
        assert "1280" in job["analysis"]["errors"][0] and "100" in job["analysis"]["errors"][0]
        assert not job["analysis"].get("volume_cm3")  # never loaded
        still_serving(client, resident)  # 12 triangles are under the limit
    finally:
        try:
            stop_process(worker)  # a loaded worker may finish its job first: then killed
        finally:
            stack.start_workers()  # whatever happened: the session's tests need them


@pytest.mark.parametrize("raw", ["../../../../tmp/evil-fabqueue.stl",
                                 "..\\..\\evil-fabqueue.stl",
                                 "Kūbas 立方体 ☃.stl",
                                 "a" * 296 + ".stl",
                                 "/etc/evil-fabqueue.stl"],
                         ids=["dotdot", "backslash", "unicode", "300-chars", "absolute"])
def test_file_names_are_display_text_only(stack: Stack, client: TestClient,
                                          resident: dict[str, str], raw: str) -> None:
    outside_before = set(stack.data_dir.parent.rglob("*evil*")) | set(Path("/tmp").glob(
        "evil*")) | set(Path("/etc").glob("evil*"))
    r = upload(client, resident, raw, cube_stl(15))
    assert r.status_code == 201, r.text
    job = r.json()
    shown = job["file_name"]
    assert "/" not in shown and "\\" not in shown and ".." not in shown
    assert 0 < len(shown) <= 200 and shown.endswith(".stl")
    if "Kūbas" in raw:
        assert shown == raw
    outside_after = set(stack.data_dir.parent.rglob("*evil*")) | set(Path("/tmp").glob(
        "evil*")) | set(Path("/etc").glob("evil*"))
    assert outside_after == outside_before
    # in the store everything is named by its hash
    for p in stack.ctx.files.root.rglob("*"):
        if p.is_file() and p.parent != stack.ctx.files.tmp:
            assert len(p.name) == 64 and p.parent.parent.parent == stack.ctx.files.root, p
    done = settled(client, resident, job["id"])
    assert done["status"] == "awaiting_approval"
    got = client.get(done["file_url"], headers=resident)
    assert got.status_code == 200
    assert "/" not in got.headers["content-disposition"].split("filename", 1)[1]


def test_upload_needs_material_and_sane_copies(client: TestClient,
                                               resident: dict[str, str]) -> None:
    r = client.post("/api/jobs", headers=resident,
                    files={"file": ("c.stl", io.BytesIO(cube_stl()), "model/stl")})
    assert r.status_code == 422 and "PLA" in r.json()["detail"]
    for copies in ("0", "51", "two"):
        r = upload(client, resident, "c.stl", cube_stl(), copies=copies)
        assert r.status_code == 422, copies
        assert "Copies" in r.json()["detail"]
    r = upload(client, resident, "c.stl", cube_stl(), site="nowhere")
    assert r.status_code == 422 and "nowhere" in r.json()["detail"]
    r = client.post("/api/jobs", headers=resident, data={"material": "PLA"})
    assert r.status_code in (400, 422)
    assert isinstance(r.json()["detail"], str)


def test_no_job_is_left_analyzing(stack: Stack, client: TestClient,
                                  resident: dict[str, str]) -> None:
    """After all of the above, the worker has settled every job it was given."""
    def none_analyzing() -> bool:
        r = client.get("/api/jobs", headers=resident, params={"status": "analyzing"})
        return r.json()["total"] == 0

    wait_for(none_analyzing, timeout=60, what="no job analyzing")
