"""Limits checked before any parser runs: STL headers, zip directories, XML entities."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import pytest

from fabqueue.analysis import guards
from fabqueue.analysis.guards import (
    UploadLimits,
    ZipLimits,
    check_stl,
    check_xml_bytes,
    check_zip,
    safe_zip_members,
)
from fabqueue.core.findings import Refused


def refused_code(call: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(Refused) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    return caught.value.finding.code


def binary_stl(path: Path, count: int, header: bytes = b"binary") -> Path:
    path.write_bytes(header.ljust(80, b" ") + struct.pack("<I", count) + bytes(50 * count))
    return path


def ascii_stl(path: Path, facets: int) -> Path:
    facet = (b"facet normal 0 0 1\n outer loop\n  vertex 0 0 0\n  vertex 1 0 0\n"
             b"  vertex 0 1 0\n endloop\nendfacet\n")
    path.write_bytes(b"solid part\n" + facet * facets + b"endsolid part\n")
    return path


def test_defaults_are_sane() -> None:
    limits = UploadLimits()
    assert limits.max_bytes == 100 * 1024 * 1024
    assert limits.max_triangles == 2_000_000
    assert limits.zip.max_ratio > 50 and limits.zip.max_members >= 100


def test_binary_stl_count_comes_from_the_header(tmp_path: Path) -> None:
    assert check_stl(binary_stl(tmp_path / "a.stl", 7), max_triangles=10) == 7


def test_binary_stl_whose_header_says_solid(tmp_path: Path) -> None:
    # SolidWorks and others write "solid" into binary headers; the size decides
    path = binary_stl(tmp_path / "a.stl", 12, header=b"solid part exported as binary")
    assert check_stl(path, max_triangles=100) == 12


def test_ascii_stl_facets_are_counted(tmp_path: Path) -> None:
    assert check_stl(ascii_stl(tmp_path / "a.stl", 25), max_triangles=100) == 25


def test_ascii_count_across_chunk_boundaries(tmp_path: Path) -> None:
    path = ascii_stl(tmp_path / "a.stl", 40)
    for chunk in (5, 7, 8, 13, 64, 1000):
        assert guards._ascii_stl_count(path, chunk=chunk) == 40


def test_ascii_stl_over_the_limit(tmp_path: Path) -> None:
    path = ascii_stl(tmp_path / "a.stl", 30)
    assert refused_code(check_stl, path, max_triangles=29) == "too_many_triangles"


def test_binary_limit_and_truncation(tmp_path: Path) -> None:
    path = binary_stl(tmp_path / "a.stl", 30)
    assert refused_code(check_stl, path, max_triangles=29) == "too_many_triangles"
    path.write_bytes(path.read_bytes()[:-1])
    assert refused_code(check_stl, path, max_triangles=100) == "truncated_stl"


def test_tiny_and_empty_stl(tmp_path: Path) -> None:
    path = tmp_path / "a.stl"
    path.write_bytes(b"")
    assert refused_code(check_stl, path, max_triangles=10) == "empty_file"
    path.write_bytes(b"\x00" * 40)
    assert refused_code(check_stl, path, max_triangles=10) == "truncated_stl"
    binary_stl(path, 0)
    assert refused_code(check_stl, path, max_triangles=10) == "empty_file"


def test_binary_with_a_large_surplus_is_not_an_stl(tmp_path: Path) -> None:
    path = binary_stl(tmp_path / "a.stl", 2)
    path.write_bytes(path.read_bytes() + bytes(5000))
    assert refused_code(check_stl, path, max_triangles=10) == "not_a_mesh"


def test_oversized_file(tmp_path: Path) -> None:
    path = binary_stl(tmp_path / "a.stl", 30)
    assert refused_code(check_stl, path, max_triangles=100, max_bytes=1000) == "file_too_large"


def make_zip(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return path


def test_safe_zip_returns_members(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "ok.zip", {"a.stl": b"solid a\n", "dir/b.svg": b"<svg/>"})
    names = [info.filename for info in safe_zip_members(path)]
    assert names == ["a.stl", "dir/b.svg"]


def test_high_ratio_member_is_a_bomb(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "bomb.zip", {"zeros.stl": bytes(20 * 1024 * 1024)})
    assert refused_code(safe_zip_members, path) == "zip_bomb"


def test_total_expanded_size_limit(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "big.zip", {"a.bin": bytes(3000), "b.bin": bytes(3000)},
                    method=zipfile.ZIP_STORED)
    assert refused_code(check_zip, path, max_total_bytes=5000) == "archive_too_large"


def test_too_many_members(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "many.zip", {f"f{i}.stl": b"x" for i in range(12)})
    assert refused_code(safe_zip_members, path, ZipLimits(max_members=10)) == "too_many_members"


@pytest.mark.parametrize("name", ["../x.stl", "a/../../x.stl", "/abs.stl", "C:/x.stl",
                                  "..\\x.stl"])
def test_escaping_names(tmp_path: Path, name: str) -> None:
    path = make_zip(tmp_path / "evil.zip", {"ok.stl": b"x", name: b"x"})
    assert refused_code(safe_zip_members, path) == "unsafe_archive_path"


def test_nested_archive(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "outer.zip", {"inner.zip": b"PK\x05\x06" + bytes(18)})
    assert refused_code(safe_zip_members, path) == "nested_archive"


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "fake.zip"
    path.write_bytes(b"not a zip at all")
    assert refused_code(safe_zip_members, path) == "bad_archive"


def test_plain_xml_passes() -> None:
    check_xml_bytes(b'<?xml version="1.0"?><model unit="millimeter"><resources/></model>')
    check_xml_bytes(b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "x.dtd"><svg/>')


@pytest.mark.parametrize("doc", [
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
    b"<lolz>&lol2;</lolz>",
    b'<!doctype x [<!entity xxe SYSTEM "file:///etc/passwd">]><x>&xxe;</x>',
])
def test_entities_are_refused(doc: bytes) -> None:
    assert refused_code(check_xml_bytes, doc) == "xml_entities"


def test_upload_limits_are_accepted_for_batches(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "class.zip", {"anna.3mf": b"PK", "ben.stl": b"solid b\n"})
    infos = safe_zip_members(path, UploadLimits())  # student 3MF files are models, not nests
    assert [i.filename for i in infos] == ["anna.3mf", "ben.stl"]
    tight = UploadLimits(zip=ZipLimits(max_members=1))
    assert refused_code(safe_zip_members, path, tight) == "too_many_members"
