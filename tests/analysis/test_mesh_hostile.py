"""Broken and hostile uploads: every one ends as ok=False with a clear code, never a crash."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import trimesh

from fabqueue.analysis.guards import UploadLimits
from fabqueue.analysis.mesh import analyse_mesh
from fabqueue.core.estimates import PrintParams
from fabqueue.core.specs import PrinterSpec

PRINTERS = (PrinterSpec("mk3", "lab", (250, 210, 220), ("PLA",)),)
CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
    b'package/2006/content-types"><Default Extension="model" ContentType="application/'
    b'vnd.ms-package.3dmanufacturing-3dmodel+xml"/></Types>'
)


def analyse(path: Path, fmt: str = "stl", **kwargs: object) -> dict:
    return analyse_mesh(path, fmt, material=None, params=PrintParams(), printers=PRINTERS,
                        **kwargs)


def error_codes(report: dict) -> list[str]:
    assert report["ok"] is False
    return [e["code"] for e in report["errors"]]


def binary_stl(triangles: np.ndarray, count: int | None = None) -> bytes:
    """A binary STL of (n, 3, 3) triangles; ``count`` overrides the header's triangle count."""
    n = len(triangles)
    records = np.zeros(n, dtype=[("normal", "<f4", (3,)), ("v", "<f4", (3, 3)), ("a", "<u2")])
    records["v"] = triangles
    header = b"fabqueue test".ljust(80, b" ")
    return header + struct.pack("<I", n if count is None else count) + records.tobytes()


def cube_triangles() -> np.ndarray:
    box = trimesh.creation.box(extents=(10, 10, 10))
    return box.vertices[box.faces].astype(np.float32)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.stl"
    path.write_bytes(b"")
    assert error_codes(analyse(path)) == ["empty_file"]


def test_ascii_stl_without_facets_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.stl"
    path.write_bytes(b"solid Empty\nendsolid Empty")
    assert error_codes(analyse(path)) == ["empty_file"]


def test_truncated_binary_stl(tmp_path: Path) -> None:
    path = tmp_path / "cut.stl"
    path.write_bytes(binary_stl(cube_triangles())[:-30])
    report = analyse(path)
    assert error_codes(report) == ["truncated_stl"]
    assert report["errors"][0]["params"] == {"count": 12, "present": 11}


def test_header_claiming_more_triangles_than_present(tmp_path: Path) -> None:
    path = tmp_path / "liar.stl"
    path.write_bytes(binary_stl(cube_triangles(), count=1_000_000))
    report = analyse(path)
    assert error_codes(report) == ["truncated_stl"]
    assert report["errors"][0]["params"]["present"] == 12


def test_ascii_stl_with_garbage_numbers(tmp_path: Path) -> None:
    path = tmp_path / "garbage.stl"
    facet = b"facet normal 0 0 1\nouter loop\nvertex 1 2 x\nvertex 1 2 3\nvertex 4 5 6\n" \
            b"endloop\nendfacet\n"
    path.write_bytes(b"solid junk\n" + facet * 3 + b"endsolid junk\n")
    assert error_codes(analyse(path)) == ["unreadable_file"]


def test_nan_coordinates(tmp_path: Path) -> None:
    triangles = cube_triangles()
    triangles[3, 1, 2] = np.nan
    triangles[7, 0, 0] = np.inf
    path = tmp_path / "nan.stl"
    path.write_bytes(binary_stl(triangles))
    report = analyse(path)
    assert error_codes(report) == ["nan_coordinates"]
    assert report["nan_coordinates"] == 2


def test_flat_zero_volume_mesh(tmp_path: Path) -> None:
    square = np.array([[[0, 0, 0], [10, 0, 0], [10, 10, 0]], [[0, 0, 0], [10, 10, 0], [0, 10, 0]]],
                      dtype=np.float32)
    path = tmp_path / "flat.stl"
    path.write_bytes(binary_stl(square))
    assert error_codes(analyse(path)) == ["flat_mesh"]


def test_closed_but_empty_inside_has_zero_volume(tmp_path: Path) -> None:
    # a tetrahedron whose faces all enclose nothing: two triangles back to back, twice
    a, b, c, d = ([0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10])
    tris = np.array([[a, b, c], [a, c, b], [a, b, d], [a, d, b]], dtype=np.float32)
    path = tmp_path / "hollow.stl"
    path.write_bytes(binary_stl(tris))
    assert error_codes(analyse(path)) == ["zero_volume"]


def test_non_manifold_triangle_soup(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    path = tmp_path / "soup.stl"
    path.write_bytes(binary_stl(rng.uniform(0, 30, (200, 3, 3)).astype(np.float32)))
    assert error_codes(analyse(path)) == ["triangle_soup"]


def test_png_named_stl(tmp_path: Path) -> None:
    from PIL import Image

    path = tmp_path / "photo.stl"
    Image.new("RGB", (64, 64), "red").save(path, format="PNG")
    report = analyse(path)
    assert error_codes(report) == ["not_a_mesh"]
    assert report["errors"][0]["params"]["kind"] == "PNG image"


def test_random_bytes_named_stl(tmp_path: Path) -> None:
    path = tmp_path / "noise.stl"
    path.write_bytes(np.random.default_rng(2).bytes(5000))
    assert error_codes(analyse(path))[0] in {"truncated_stl", "not_a_mesh"}


def test_over_the_triangle_limit_is_refused_without_parsing(tmp_path: Path) -> None:
    # a sparse 125 MB file: the header says 2.5 M triangles and the size agrees
    count = 2_500_000
    path = tmp_path / "huge.stl"
    with path.open("wb") as f:
        f.write(b"x" * 80 + struct.pack("<I", count))
        f.truncate(84 + 50 * count)
    limits = UploadLimits(max_bytes=200 * 1024 * 1024)
    report = analyse(path, limits=limits)  # refused unread: timed in bench/bench_unit_timings.py
    assert error_codes(report) == ["too_many_triangles"]
    assert report["errors"][0]["params"] == {"count": count, "limit": 2_000_000}


def test_file_over_the_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.stl"
    path.write_bytes(binary_stl(cube_triangles()))
    assert error_codes(analyse(path, limits=UploadLimits(max_bytes=500))) == ["file_too_large"]


def write_zip_bomb(path: Path, expanded_mb: int = 1024) -> None:
    """A 3MF whose model part inflates to ``expanded_mb`` MB of zeros, written in ~1 MB.

    Each 1 MB block of zeros is deflated once with a full flush, which resets the compressor,
    so every block compresses to the same bytes and the stream is that piece repeated.
    """
    block = bytes(1024 * 1024)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    tail = deflate.flush(zlib.Z_FINISH)
    crc = 0
    for _ in range(expanded_mb):
        crc = zlib.crc32(block, crc)
    name = b"3D/3dmodel.model"
    size = expanded_mb * len(block)
    packed = len(piece) * expanded_mb + len(tail)
    common = struct.pack("<HHHHHIII", 20, 0, 8, 0, 0, crc, packed, size)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as normal:
        normal.writestr("[Content_Types].xml", CONTENT_TYPES)
    head = buffer.getvalue()
    directory_at = head.index(b"PK\x01\x02")
    end_at = head.index(b"PK\x05\x06")
    first_local, first_central = head[:directory_at], head[directory_at:end_at]
    with path.open("wb") as f:
        f.write(first_local)
        offset = f.tell()
        f.write(b"PK\x03\x04" + common + struct.pack("<HH", len(name), 0) + name)
        for _ in range(expanded_mb):
            f.write(piece)
        f.write(tail)
        central_at = f.tell()
        central = first_central + b"PK\x01\x02" + struct.pack("<H", 20) + common + struct.pack(
            "<HHHHHII", len(name), 0, 0, 0, 0, 0, offset) + name
        f.write(central)
        f.write(b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, 2, 2, len(central), central_at, 0))


def test_3mf_zip_bomb_is_refused_fast(tmp_path: Path) -> None:
    path = tmp_path / "bomb.3mf"
    write_zip_bomb(path)
    assert path.stat().st_size < 2 * 1024 * 1024
    with zipfile.ZipFile(path) as archive:  # a well-formed archive announcing 1 GB
        assert archive.getinfo("3D/3dmodel.model").file_size == 1024**3
    report = analyse(path, "3mf")  # refused before expanding: bench/bench_unit_timings.py
    assert error_codes(report) == ["zip_bomb"]


def model_3mf(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data)
    return path


TETRA_MODEL = (
    b'<?xml version="1.0" encoding="UTF-8"?><model unit="millimeter" xmlns="http://schemas.'
    b'microsoft.com/3dmanufacturing/core/2015/02"><resources><object id="1" type="model">'
    b'<mesh><vertices><vertex x="0" y="0" z="0"/><vertex x="10" y="0" z="0"/>'
    b'<vertex x="0" y="10" z="0"/><vertex x="0" y="0" z="10"/></vertices><triangles>'
    b'<triangle v1="0" v2="2" v3="1"/><triangle v1="0" v2="1" v3="3"/>'
    b'<triangle v1="0" v2="3" v3="2"/><triangle v1="1" v2="2" v3="3"/></triangles></mesh>'
    b'</object></resources><build><item objectid="1"/></build></model>'
)


def test_generated_3mf_reads(tmp_path: Path) -> None:
    report = analyse(model_3mf(tmp_path / "ok.3mf", {"3D/3dmodel.model": TETRA_MODEL}), "3mf")
    assert report["ok"] and report["watertight"]
    assert report["volume_cm3"] * 1000 == pytest.approx(1000 / 6, rel=1e-5)


@pytest.mark.parametrize("name", ["../../evil.model", "/etc/cron.d/evil", "3D/../../x.model",
                                  "C:/Windows/evil.model"])
def test_3mf_with_escaping_member_names(tmp_path: Path, name: str) -> None:
    path = model_3mf(tmp_path / "escape.3mf", {"3D/3dmodel.model": TETRA_MODEL, name: b"x"})
    assert error_codes(analyse(path, "3mf")) == ["unsafe_archive_path"]


def test_3mf_with_xml_entities(tmp_path: Path) -> None:
    laughs = (b'<?xml version="1.0"?><!DOCTYPE model [<!ENTITY lol "lol">'
              b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>' + TETRA_MODEL.split(b"?>", 1)[1])
    path = model_3mf(tmp_path / "laughs.3mf", {"3D/3dmodel.model": laughs})
    assert error_codes(analyse(path, "3mf")) == ["xml_entities"]


def test_3mf_over_the_triangle_limit(tmp_path: Path) -> None:
    path = model_3mf(tmp_path / "ok.3mf", {"3D/3dmodel.model": TETRA_MODEL})
    report = analyse(path, "3mf", limits=UploadLimits(max_triangles=3))
    assert error_codes(report) == ["too_many_triangles"]


def test_3mf_that_is_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "fake.3mf"
    path.write_bytes(b"solid nope\n" * 10)
    assert error_codes(analyse(path, "3mf")) == ["bad_archive"]


def test_obj_with_broken_faces(tmp_path: Path) -> None:
    path = tmp_path / "broken.obj"
    path.write_bytes(b"v 0 0 0\nv 1 0 0\nf 1 2 9\n")
    assert error_codes(analyse(path, "obj"))[0] in {"unreadable_file", "empty_file"}


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.step"
    path.write_bytes(b"ISO-10303-21;")
    assert error_codes(analyse(path, "step")) == ["unsupported_format"]


def ascii_facets(tris: np.ndarray, upper: bool = False) -> bytes:
    lines = ["solid part"]
    for tri in tris:
        lines += ["  facet normal 0 0 0", "    outer loop"]
        lines += [f"      vertex {x:.6e} {y:.6e} {z:.6e}" for x, y, z in tri]
        lines += ["    endloop", "  endfacet"]
    lines.append("endsolid part")
    text = "\n".join(lines) + "\n"
    return (text.upper() if upper else text).encode()


@pytest.mark.parametrize("upper", [False, True])
def test_ascii_stl_reads_like_binary(tmp_path: Path, upper: bool) -> None:
    path = tmp_path / "cube.stl"
    path.write_bytes(ascii_facets(cube_triangles(), upper=upper))
    report = analyse(path)
    assert report["ok"] and report["watertight"] and report["triangles"] == 12
    assert report["volume_cm3"] == pytest.approx(1.0, rel=1e-6)


def test_ascii_stl_with_a_missing_number(tmp_path: Path) -> None:
    text = ascii_facets(cube_triangles()).replace(b"vertex 5.000000e+00", b"vertex", 1)
    path = tmp_path / "short.stl"
    path.write_bytes(text)
    assert error_codes(analyse(path)) == ["unreadable_file"]


def test_ascii_stl_with_a_facet_missing_a_vertex(tmp_path: Path) -> None:
    lines = ascii_facets(cube_triangles()).split(b"\n")
    del lines[3]  # the first facet's first vertex
    path = tmp_path / "two_corners.stl"
    path.write_bytes(b"\n".join(lines))
    assert error_codes(analyse(path)) == ["unreadable_file"]
