"""Issue 19, "nothing kept from a refused request": every endpoint that takes files leaves
the store as it was when it refuses, wherever the refusal comes from (the multipart parser
after a stored file part, a second file, a damaged zip member, the quota). Each upload's bytes
are unique to the test, so "its blob is not in the store" is exact even while the session's
workers write thumbnails for other jobs."""

from __future__ import annotations

import hashlib
import io
import secrets
import zipfile
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fabqueue.web.uploads import MAX_FIELD_BYTES
from tests.conftest import Stack
from tests.helpers import cube_stl, english_client, login

pytestmark = pytest.mark.stack


@pytest.fixture
def client(stack: Stack) -> TestClient:
    return english_client(stack)


def unique_stl(size: float = 12.0) -> bytes:
    """A valid binary STL no other test uploads (its 80-byte header is random)."""
    body = cube_stl(size)
    return secrets.token_hex(40).encode()[:80] + body[80:]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def multipart(parts: list[tuple[str, str | None, bytes]]) -> tuple[bytes, dict[str, str]]:
    """A multipart body in exactly this order (httpx puts the fields first)."""
    boundary = "wh" + secrets.token_hex(8)
    out = io.BytesIO()
    for name, filename, data in parts:
        out.write(f"--{boundary}\r\n".encode())
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out.write(f"Content-Disposition: {disp}\r\n\r\n".encode())
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def post(client: TestClient, url: str, headers: dict[str, str],
         parts: list[tuple[str, str | None, bytes]]) -> Any:
    body, ctype = multipart(parts)
    return client.post(url, content=body, headers={**headers, **ctype})


def stored(stack: Stack, data: bytes) -> bool:
    return stack.ctx.files.exists(sha(data))


def tmp_left(stack: Stack) -> list[str]:
    return sorted(p.name for p in stack.ctx.files.tmp.iterdir())


LONG = b"x" * (MAX_FIELD_BYTES + 10)


def test_single_file_endpoint_keeps_nothing_it_refused(stack: Stack, client: TestClient
                                                        ) -> None:
    h = login(stack, client, "resident")
    before_tmp = tmp_left(stack)
    model = unique_stl()
    r = post(client, "/api/jobs", h, [("file", "a.stl", model), ("material", None, b"PLA"),
                                      ("note", None, LONG)])
    assert r.status_code == 400, r.text
    assert not stored(stack, model)

    first, second = unique_stl(), unique_stl(14)
    r = post(client, "/api/jobs", h, [("material", None, b"PLA"), ("file", "a.stl", first),
                                      ("file", "b.stl", second)])
    assert r.status_code == 400, r.text
    assert not stored(stack, first) and not stored(stack, second)

    wrong = unique_stl()  # refused by the handler itself: an unknown material
    r = post(client, "/api/jobs", h, [("material", None, b"no-such"), ("file", "a.stl", wrong)])
    assert r.status_code == 422, r.text
    assert not stored(stack, wrong)
    assert tmp_left(stack) == before_tmp

    kept = unique_stl()  # and an accepted upload keeps its file
    r = post(client, "/api/jobs", h, [("material", None, b"PLA"), ("file", "a.stl", kept)])
    assert r.status_code == 201, r.text
    assert stored(stack, kept)


def test_page_form_keeps_nothing_it_refused(stack: Stack, client: TestClient) -> None:
    h = login(stack, client, "resident")
    model = unique_stl()
    r = post(client, "/submit", h, [("file", "a.stl", model), ("csrf_token", None, LONG)])
    assert r.status_code == 400, r.text
    assert not stored(stack, model)
    other = unique_stl()
    r = post(client, "/submit", h, [("csrf_token", None, b"forged"), ("file", "a.stl", other)])
    assert r.status_code in (400, 403), r.text
    assert not stored(stack, other)


def damaged_zip(good: bytes, bad: bytes) -> bytes:
    """Two stored members; the second one's bytes no longer match its CRC."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("Jonas.stl", good)
        zf.writestr("Ona.stl", bad)
    raw = bytearray(buf.getvalue())
    at = raw.rindex(bad[100:140])  # inside the second member's data
    raw[at] ^= 0xFF
    return bytes(raw)


def test_class_upload_keeps_nothing_it_refused(stack: Stack, client: TestClient) -> None:
    h = login(stack, client, "teacher")
    good, bad = unique_stl(), unique_stl(14)
    r = post(client, "/api/batches", h, [
        ("class_name", None, b"8b"), ("material", None, b"PLA"),
        ("files", "class.zip", damaged_zip(good, bad))])
    assert r.status_code == 422, r.text
    assert not stored(stack, good), "the first member stayed after the second failed its CRC"

    one = unique_stl()
    r = post(client, "/api/batches", h, [("files", "Jonas.stl", one),
                                         ("class_name", None, LONG)])
    assert r.status_code == 400, r.text
    assert not stored(stack, one)


def test_students_csv_is_limited_before_it_is_read(stack: Stack, client: TestClient) -> None:
    h = login(stack, client, "teacher")
    model = unique_stl()
    rows = "".join(f"{secrets.token_hex(20)}.stl,{secrets.token_hex(20)}\n"
                   for _ in range(12_000))  # ~1 MB, hardly compressible: no bomb ratio
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("Jonas.stl", model)
        zf.writestr("students.csv", rows)
    r = post(client, "/api/batches", h, [("class_name", None, b"8b"),
                                         ("material", None, b"PLA"),
                                         ("files", "class.zip", buf.getvalue())])
    assert r.status_code == 422, r.text
    assert "students.csv" in r.json()["detail"] and "KB" in r.json()["detail"]
    assert not stored(stack, model)


def test_quota_refuses_residents_in_their_language_and_spares_staff(
        stack: Stack, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack.ctx.settings, "max_storage_per_user_bytes", 2 * 1024 * 1024)
    resident = stack.token(client, stack.user("resident"))
    fill = unique_stl() + b"\0" * (2 * 1024 * 1024)  # over the quota on its own
    r = post(client, "/api/jobs", {**resident, "Accept-Language": "lt"},
             [("material", None, b"PLA"), ("file", "a.stl", fill)])
    assert r.status_code == 413, r.text
    assert "2 MB" in r.json()["detail"] and "Your files" not in r.json()["detail"]
    assert not stored(stack, fill)
    staff = login(stack, client, "staff")
    r = post(client, "/api/jobs", staff, [("material", None, b"PLA"), ("file", "a.stl", fill)])
    assert r.status_code == 201, r.text
