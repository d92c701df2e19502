"""Class batches: a teacher hands in a class at once; staff decide on the whole class."""

from __future__ import annotations

import hashlib
import io
import zipfile
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Stack, wait_for
from tests.helpers import cube_stl, english_client, zip_bomb, zip_bytes


@pytest.fixture
def client(stack: Stack) -> TestClient:
    return english_client(stack)


@pytest.fixture(scope="module")
def h(stack: Stack) -> dict[str, dict[str, str]]:
    names = {"teacher": stack.user("teacher", "kc"), "teacher2": stack.user("teacher", "kc"),
             "staff": stack.user("staff", "kc"), "staff_b": stack.user("staff", "school-b"),
             "resident": stack.user("resident")}
    with stack.client() as c:
        return {role: stack.token(c, name) for role, name in names.items()}


def hand_in(client: TestClient, headers: dict[str, str], files: list[tuple[str, bytes]],
            class_name: str = "8b", **fields: str) -> Any:
    return client.post("/api/batches", headers=headers,
                       data={"class_name": class_name, "material": "PLA", **fields},
                       files=[("files", (n, io.BytesIO(d), "application/octet-stream"))
                              for n, d in files])


def settled_batch(client: TestClient, headers: dict[str, str], batch_id: int) -> dict:
    def done() -> dict | None:
        b = client.get(f"/api/batches/{batch_id}", headers=headers).json()
        busy = b["totals"]["by_status"].get("analyzing", 0)
        return b if busy == 0 else None

    return wait_for(done, timeout=90, interval=0.3, what=f"analysis of batch {batch_id}")


@pytest.fixture(scope="module")
def class_8b(stack: Stack, h: dict[str, dict[str, str]]) -> dict:
    with stack.client() as c:
        r = hand_in(c, h["teacher"], [("Ona_Petraitytė.stl", cube_stl(10)),
                                      ("jonas-jonaitis.stl", cube_stl(12)),
                                      ("Ieva Kazlauskaitė.stl", cube_stl(14))])
        assert r.status_code == 201, r.text
        return settled_batch(c, h["teacher"], r.json()["id"])


def test_many_files_make_one_batch_with_students_from_file_names(class_8b: dict) -> None:
    assert class_8b["class_name"] == "8b" and class_8b["site"] == "kc"
    assert datetime.fromisoformat(class_8b["created_at"]).tzinfo is not None
    students = sorted(j["student_name"] for j in class_8b["jobs"])
    assert students == ["Ieva Kazlauskaitė", "Ona Petraitytė", "jonas jonaitis"]
    assert {j["batch"] for j in class_8b["jobs"]} == {class_8b["id"]}


def test_teacher_sees_totals(class_8b: dict) -> None:
    totals = class_8b["totals"]
    assert totals["jobs"] == 3
    assert totals["by_status"] == {"awaiting_approval": 3}
    grams = sum(j["summary"]["material_g"] for j in class_8b["jobs"])
    assert totals["material_g"] == pytest.approx(grams, abs=0.2) and grams > 0
    assert totals["cost"] > 0 and totals["estimated_seconds"] > 0


def test_zip_with_students_csv(client: TestClient, h: dict[str, dict[str, str]]) -> None:
    archive = zip_bytes({"class/a.stl": cube_stl(10), "class/b.stl": cube_stl(11),
                         "students.csv": "file,student\na.stl,Rūta Rutkauskė\n"
                                         "b.stl,Петр Петров\n".encode(),
                         "readme.txt": b"hello"})
    r = hand_in(client, h["teacher"], [("class.zip", archive)], class_name="9a")
    assert r.status_code == 201, r.text
    batch = r.json()
    assert sorted(j["student_name"] for j in batch["jobs"]) == ["Rūta Rutkauskė",
                                                                 "Петр Петров"]
    assert [s["file"] for s in batch["skipped"]] == ["readme.txt"]
    assert "STL" in batch["skipped"][0]["reason"]
    batch = settled_batch(client, h["teacher"], batch["id"])
    assert batch["totals"]["by_status"] == {"awaiting_approval": 2}


def test_teacher_cannot_decide_and_other_teacher_cannot_see(
        client: TestClient, h: dict[str, dict[str, str]], class_8b: dict) -> None:
    bid = class_8b["id"]
    assert client.post(f"/api/batches/{bid}/approve", headers=h["teacher"]).status_code == 403
    assert client.get(f"/api/batches/{bid}", headers=h["teacher2"]).status_code == 403
    assert client.post(f"/api/batches/{bid}/approve", headers=h["staff_b"]).status_code == 403


def test_staff_approve_the_whole_batch_at_once(client: TestClient,
                                               h: dict[str, dict[str, str]],
                                               class_8b: dict) -> None:
    bid = class_8b["id"]
    r = client.post(f"/api/batches/{bid}/approve", headers=h["staff"])
    assert r.status_code == 200, r.text
    out = r.json()
    assert sorted(out["decided"]) == sorted(j["id"] for j in class_8b["jobs"])
    assert out["problems"] == []
    assert all(j["status"] in ("approved", "slicing", "ready") for j in out["jobs"])
    for j in class_8b["jobs"]:
        log = client.get(f"/api/jobs/{j['id']}/events", headers=h["teacher"]).json()
        assert any(e["to"] == "approved" for e in log)


def test_staff_reject_the_whole_batch_with_a_reason(client: TestClient,
                                                    h: dict[str, dict[str, str]]) -> None:
    r = hand_in(client, h["teacher"], [("a.stl", cube_stl(9)), ("b.stl", cube_stl(9.5))])
    assert r.status_code == 201
    bid = settled_batch(client, h["teacher"], r.json()["id"])["id"]
    no_reason = client.post(f"/api/batches/{bid}/reject", headers=h["staff"], json={})
    assert no_reason.status_code == 422 and "reason" in no_reason.json()["detail"]
    r = client.post(f"/api/batches/{bid}/reject", headers=h["staff"],
                    json={"reason": "The class is over its plastic budget"})
    assert r.status_code == 200
    assert len(r.json()["decided"]) == 2
    assert r.json()["totals"]["by_status"] == {"rejected": 2}
    for j in r.json()["jobs"]:
        job = client.get(f"/api/jobs/{j['id']}", headers=h["teacher"]).json()
        assert job["status_reason"] == "The class is over its plastic budget"


@pytest.mark.parametrize(("name", "archive", "words"), [
    ("bomb.zip", zip_bomb(name=b"huge.stl"), "zip bomb"),
    ("nested.zip", zip_bytes({"a.stl": b"x", "inner.zip": zip_bytes({"b.stl": b"y"})}),
     "another archive"),
    ("escape.zip", zip_bytes({"a.stl": cube_stl(), "../../evil.stl": cube_stl()}),
     "outside the archive"),
    ("absolute.zip", zip_bytes({"/tmp/evil.stl": cube_stl()}), "outside the archive"),
], ids=["bomb", "nested", "dotdot", "absolute"])
def test_hostile_zips_are_refused(stack: Stack, client: TestClient,
                                  h: dict[str, dict[str, str]], name: str, archive: bytes,
                                  words: str) -> None:
    before = {b["id"] for b in client.get("/api/batches", headers=h["teacher"]).json()}
    r = hand_in(client, h["teacher"], [(name, archive)], class_name="hostile")
    assert r.status_code == 422, r.text
    assert words in r.json()["detail"]
    assert {b["id"] for b in client.get("/api/batches", headers=h["teacher"]).json()} == before
    assert not list(stack.data_dir.parent.rglob("evil.stl"))


def test_a_class_needs_a_name_and_usable_files(client: TestClient,
                                               h: dict[str, dict[str, str]]) -> None:
    r = hand_in(client, h["teacher"], [("a.stl", cube_stl())], class_name=" ")
    assert r.status_code == 422 and "class" in r.json()["detail"]
    r = hand_in(client, h["teacher"], [("a.txt", b"hello")])
    assert r.status_code == 422 and "a.txt" in r.json()["detail"]
    r = hand_in(client, h["teacher"], [])  # no file at all: not even a multipart form
    assert r.status_code in (400, 422) and "multipart" in r.json()["detail"]


def test_residents_cannot_hand_in_a_class(client: TestClient,
                                          h: dict[str, dict[str, str]]) -> None:
    r = hand_in(client, h["resident"], [("a.stl", cube_stl())])
    assert r.status_code == 403
    assert "teachers" in r.json()["detail"]


def damaged_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("a.stl", cube_stl())
    data = bytearray(buf.getvalue())
    data[200] ^= 0xFF  # a byte of the member flipped: its CRC no longer matches
    return bytes(data)


@pytest.mark.parametrize("archive", [damaged_zip(), b"PK\x03\x04 not really a zip"],
                         ids=["bad-crc", "not-a-zip"])
def test_damaged_zips_are_refused_in_words(stack: Stack, client: TestClient,
                                           h: dict[str, dict[str, str]],
                                           archive: bytes) -> None:
    r = hand_in(client, h["teacher"], [("class.zip", archive)], class_name="damaged")
    assert r.status_code == 422, r.text
    assert "damaged" in r.json()["detail"] or "could not be opened" in r.json()["detail"]
    assert list(stack.ctx.files.tmp.glob("up-*")) == []  # no half-written upload


def test_a_refused_class_leaves_no_batch_behind(client: TestClient,
                                                h: dict[str, dict[str, str]]) -> None:
    """A sheet material fits the drawing but not the model: the class is refused as a whole
    and nothing half-made stays behind (no batch, no job waiting for analysis)."""
    svg = (b'<svg xmlns="http://www.w3.org/2000/svg" width="20mm" height="20mm">'
           b'<rect width="10" height="10" stroke="#ff0000" fill="none"/></svg>')
    before = {b["id"] for b in client.get("/api/batches", headers=h["teacher"]).json()}
    jobs_before = client.get("/api/jobs", headers=h["teacher"]).json()["total"]
    r = hand_in(client, h["teacher"], [("a.svg", svg), ("b.stl", cube_stl())],
                material="plywood-3mm")
    assert r.status_code == 422, r.text
    assert "plywood-3mm" in r.json()["detail"]
    assert {b["id"] for b in client.get("/api/batches", headers=h["teacher"]).json()} == before
    assert client.get("/api/jobs", headers=h["teacher"]).json()["total"] == jobs_before


def test_a_class_counts_against_the_teachers_store(
        stack: Stack, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """A class hand-in is held to the per-user storage limit as single uploads are, models
    unpacked from a zip by their own size; refused, it leaves no file and no batch."""
    teacher = stack.token(client, stack.user("teacher", "kc"))
    small, big = cube_stl(10), cube_stl(11) + b" " * 4000  # a unique file, over the limit
    monkeypatch.setattr(stack.ctx.settings, "max_storage_per_user_bytes", 2 * len(small) + 100)
    assert hand_in(client, teacher, [("a.stl", small)]).status_code == 201
    before = client.get("/api/batches", headers=teacher).json()
    refused = hand_in(client, teacher, [("b.stl", small),
                                        ("c.zip", zip_bytes({"d.stl": big}))])
    assert refused.status_code == 413, refused.text
    assert "MB" in refused.json()["detail"]
    assert client.get("/api/batches", headers=teacher).json() == before
    assert not stack.ctx.files.path(hashlib.sha256(big).hexdigest()).exists()
