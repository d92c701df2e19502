"""Limits checked BEFORE a parser touches an upload.

Parsers (trimesh, zipfile, lxml) will happily spend gigabytes on a hostile file; these checks
read only headers, zip directories and byte counts, so a bomb is refused in milliseconds.
Every refusal is a ``Refused`` carrying a finding a resident can act on.
"""

from __future__ import annotations

import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from fabqueue.core.findings import N_, Refused

MB = 1024 * 1024

#: Bytes per binary STL triangle (normal 12 + 3 vertices 36 + attribute 2) and header size.
STL_RECORD_BYTES = 50
STL_HEADER_BYTES = 84

#: File signatures of things residents upload by mistake under a mesh extension.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF8", "GIF image"),
    (b"%PDF", "PDF document"),
    (b"PK\x03\x04", "zip archive"),
    (b"\x1f\x8b", "gzip archive"),
    (b"Rar!", "RAR archive"),
    (b"7z\xbc\xaf", "7-Zip archive"),
)


@dataclass(frozen=True)
class ZipLimits:
    """What an archive may expand to; checked from its directory, without decompressing."""

    max_total_bytes: int = 500 * MB
    max_ratio: float = 200.0  # uncompressed / compressed, per member and overall
    max_members: int = 1000


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = 100 * MB
    max_triangles: int = 2_000_000
    zip: ZipLimits = ZipLimits()
    max_xml_bytes: int = 400 * MB  # one 3MF model part once inflated


def check_size(path: Path, *, max_bytes: int) -> int:
    """Return the file size; refuse empty and oversized files."""
    size = path.stat().st_size
    if size == 0:
        raise Refused("empty_file", N_("The file is empty."))
    if size > max_bytes:
        raise Refused(
            "file_too_large",
            N_("The file is {size_mb} MB; the limit is {limit_mb} MB."),
            size_mb=round(size / MB, 1),
            limit_mb=round(max_bytes / MB, 1),
        )
    return size


def sniff_foreign(head: bytes) -> str | None:
    """Name the kind of file if its first bytes show it is not a mesh at all."""
    for magic, kind in _SIGNATURES:
        if head.startswith(magic):
            return kind
    return None


def stl_is_binary(head: bytes, size: int) -> bool:
    """Binary when the header count matches the size, or the text does not look like ASCII STL.

    Many CAD programs write binary STLs whose 80-byte header starts with "solid", so the size
    check comes first.
    """
    if size >= STL_HEADER_BYTES:
        (count,) = struct.unpack_from("<I", head, 80)
        if STL_HEADER_BYTES + STL_RECORD_BYTES * count == size:
            return True
    text = head.lstrip().lower()
    return not (text.startswith(b"solid") and (b"facet" in text or size < 1024))


def check_stl(path: Path, *, max_triangles: int, max_bytes: int = 100 * MB) -> int:
    """Return the number of triangles an STL holds, refusing it before anything is parsed."""
    size = check_size(path, max_bytes=max_bytes)
    with path.open("rb") as f:
        head = f.read(4096)
    foreign = sniff_foreign(head)
    if foreign:
        raise Refused(
            "not_a_mesh", N_("This file is a {kind}, not an STL model."), kind=foreign
        )
    binary = stl_is_binary(head, size)
    count = _binary_stl_count(head, size) if binary else _ascii_stl_count(path)
    if count == 0:
        raise Refused("empty_file", N_("The model contains no triangles."))
    if count > max_triangles:
        raise Refused(
            "too_many_triangles",
            N_("The model has {count} triangles; the limit is {limit}. Simplify it "
               "(decimate) in your CAD program and export again."),
            count=count,
            limit=max_triangles,
        )
    return count


def _binary_stl_count(head: bytes, size: int) -> int:
    if size < STL_HEADER_BYTES:
        raise Refused(
            "truncated_stl",
            N_("The STL file is cut short ({size} bytes): it ends inside its header."),
            size=size,
        )
    (count,) = struct.unpack_from("<I", head, 80)
    expected = STL_HEADER_BYTES + STL_RECORD_BYTES * count
    if size < expected:
        raise Refused(
            "truncated_stl",
            N_("The STL file is cut short: its header announces {count} triangles but it holds "
               "only {present}. Upload the complete file."),
            count=count,
            present=(size - STL_HEADER_BYTES) // STL_RECORD_BYTES,
        )
    # A few exporters pad the end; a large surplus means this is not an STL at all.
    if size - expected > 1024:
        raise Refused(
            "not_a_mesh", N_("This file is neither a binary nor a text STL model.")
        )
    return count


def _ascii_stl_count(path: Path, chunk: int = 16 * MB) -> int:
    """Count "endfacet" keywords in chunks: cheap, and an upper bound on what a parser will make."""
    count = 0
    tail = b""
    with path.open("rb") as f:
        while block := f.read(chunk):
            data = (tail + block).lower()
            count += data.count(b"endfacet")
            # keep what could be the start of a keyword cut by the chunk boundary (7 < 8 bytes,
            # so a whole keyword is never counted twice)
            tail = data[-7:]
    return count


# -- zip archives (3MF, class-batch uploads) -------------------------------------------------


def safe_zip_members(
    path: Path, limits: ZipLimits | UploadLimits = ZipLimits()
) -> list[zipfile.ZipInfo]:
    """Return the members of a zip archive after checking its directory against ``limits``.

    Refuses, without decompressing anything: unreadable archives, too many members, names
    that escape the extraction folder ("..", absolute paths, drive letters), nested archives
    (zip, gz, 7z, rar, tar; a 3MF member is a model, checked again when it is analysed), a
    total expanded size over the limit, and compression ratios only a bomb achieves.
    ``UploadLimits`` may be passed: its ``zip`` part applies.
    """
    if isinstance(limits, UploadLimits):
        limits = limits.zip
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise Refused(
            "bad_archive", N_("The archive could not be opened: {reason}."), reason=str(error)
        ) from error
    if len(members) > limits.max_members:
        raise Refused(
            "too_many_members",
            N_("The archive holds {count} files; the limit is {limit}."),
            count=len(members),
            limit=limits.max_members,
        )
    total = 0
    compressed = 0
    for info in members:
        _check_member_name(info.filename)
        if info.filename.lower().endswith(_ARCHIVES):
            raise Refused(
                "nested_archive",
                N_("The archive contains another archive ({name}); upload the files directly."),
                name=info.filename,
            )
        total += info.file_size
        compressed += info.compress_size
        if info.file_size > 1 * MB and info.file_size > limits.max_ratio * max(
            info.compress_size, 1
        ):
            raise _bomb(info.file_size, limits)
    if total > limits.max_total_bytes:
        raise Refused(
            "archive_too_large",
            N_("The archive expands to {size_mb} MB; the limit is {limit_mb} MB."),
            size_mb=round(total / MB, 1),
            limit_mb=round(limits.max_total_bytes / MB, 1),
        )
    if total > 1 * MB and total > limits.max_ratio * max(compressed, 1):
        raise _bomb(total, limits)
    return members


def _bomb(expanded: int, limits: ZipLimits) -> Refused:
    return Refused(
        "zip_bomb",
        N_("The archive would expand to {size_mb} MB, more than {ratio} times its packed size: "
           "it looks like a zip bomb and was not opened."),
        size_mb=round(expanded / MB, 1),
        ratio=int(limits.max_ratio),
    )


_ARCHIVES = (".zip", ".gz", ".tgz", ".7z", ".rar", ".tar", ".bz2", ".xz")
_DRIVE = re.compile(r"^[A-Za-z]:")


def _check_member_name(name: str) -> None:
    normal = name.replace("\\", "/")
    parts = PurePosixPath(normal).parts
    if normal.startswith("/") or _DRIVE.match(normal) or ".." in parts or "\x00" in name:
        raise Refused(
            "unsafe_archive_path",
            N_("The archive contains a file named {name} that points outside the archive; "
               "it was refused."),
            name=name,
        )


def check_zip(
    path: Path,
    *,
    max_total_bytes: int = ZipLimits.max_total_bytes,
    max_ratio: float = ZipLimits.max_ratio,
    max_members: int = ZipLimits.max_members,
) -> list[zipfile.ZipInfo]:
    """``safe_zip_members`` with the limits given one by one (3MF uploads)."""
    limits = ZipLimits(max_total_bytes=max_total_bytes, max_ratio=max_ratio,
                       max_members=max_members)
    return safe_zip_members(path, limits)


# What trimesh's 3MF loader (trimesh/exchange/threemf.py, load_3MF; util.decompress) reads:
# every member into a dict by name (a repeated name keeps its first place and its last
# data), then the first name whose lower case *contains* "3d/3dmodel.model" (so
# "3D/3dmodel.model.bak" too), then each member a <component p:path="/…"> names (the
# leading "/" stripped), parsed once per reference. The guard counts exactly that.
_TRIMESH_ROOT = "3d/3dmodel.model"
_COMPONENT = re.compile(rb"<(?:[\w.-]+:)?component\b[^>]*>")
_PATH_ATTR = re.compile(rb"""\s(?:[\w.-]+:)?path\s*=\s*(?:"([^"]*)"|'([^']*)')""")


def trimesh_3mf_members(
    members: list[zipfile.ZipInfo],
) -> tuple[zipfile.ZipInfo | None, dict[str, zipfile.ZipInfo]]:
    """The member trimesh parses as the model (None: it would find none) and every member
    by the name a component path may use."""
    by_name: dict[str, zipfile.ZipInfo] = {}
    for info in members:
        by_name[info.filename] = info
    root = next((v for k, v in by_name.items() if _TRIMESH_ROOT in k.lower()), None)
    return root, by_name


def component_paths(model_xml: bytes) -> list[str]:
    """The part paths a model's components name, one entry per reference."""
    paths = []
    for tag in _COMPONENT.findall(model_xml):
        found = _PATH_ATTR.search(tag)
        if found:
            raw = found.group(1) if found.group(1) is not None else found.group(2)
            paths.append(raw.decode("utf-8", "replace").strip("/"))
    return paths


# -- XML (3MF model parts, SVG) ---------------------------------------------------------------

_DOCTYPE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)
_ENTITY = re.compile(rb"<!ENTITY", re.IGNORECASE)


def check_xml_bytes(data: bytes) -> None:
    """Refuse XML declaring entities (XXE, billion laughs) before an XML parser sees it."""
    if _DOCTYPE.search(data) and _ENTITY.search(data):
        raise Refused(
            "xml_entities",
            N_("The file declares XML entities, which FabQueue does not accept for safety. "
               "Export it again from your design program."),
        )
