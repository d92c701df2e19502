"""``fabqueue trainings`` and the devices file's ``[[training]]`` and ``[[maintenance]]``, as
an operator runs them: the issue's own example, a lab's CSV list, bad input named clearly."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from tests.test_cli import ISSUE_TOML, fabqueue, rows


def lab_today() -> date:
    """Today in the lab's time zone, as the CLI dates a grant (Vilnius is UTC+2: from 22:00
    UTC it is already tomorrow there)."""
    from zoneinfo import ZoneInfo

    from fabqueue.config import Settings

    return datetime.now(ZoneInfo(Settings().timezone)).date()

pytestmark = pytest.mark.stack

TRAININGS_TOML = ISSUE_TOML + '''
[[training]]
id = "laser-basic"
name = { lt = "Lazerio pagrindai", ru = "Основы лазера", en = "Laser basics" }
devices = ["laser-1"]        # or kinds = ["laser"], for every laser of every site
valid_days = 365             # 0: never expires
renew_on_use = true          # operating the machine within the period extends it
staff = false                # true: staff need it too (admins never)

[[maintenance]]
id = "lens"
name = { lt = "Lęšio valymas", ru = "Чистка линзы", en = "Clean the lens" }
devices = ["laser-1"]         # or kinds = ["laser"]
every_hours = 20              # machine hours: printing, or beam on for lasers

[[maintenance]]
id = "nozzle"                 # a built-in template: its intervals, every printer
'''


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("tr") / "data"
    toml = data.parent / "lab.toml"
    toml.write_text(TRAININGS_TOML, encoding="utf-8")
    r = fabqueue("devices", "import", str(toml), "--data-dir", str(data))
    assert r.returncode == 0, r.stderr
    assert "added training laser-basic" in r.stdout and "added maintenance lens" in r.stdout
    for name in ("ona", "jonas"):
        r = fabqueue("users", "add", name, "--role", "resident", "--password-stdin",
                     "--data-dir", str(data), stdin="a-long-password\n")
        assert r.returncode == 0, r.stderr
    return data


def test_import_makes_tasks_per_machine_and_templates_fill_intervals(lab: Path) -> None:
    tasks = rows(lab, "SELECT device_id, task, every_hours, every_filament_m "
                      "FROM maintenance_tasks ORDER BY task")
    assert tasks == [("laser-1", "lens", 20.0, None), ("mk4-1", "nozzle", 500.0, 5000.0)]
    (name,), = rows(lab, "SELECT name FROM trainings WHERE id='laser-basic'")
    assert "Lazerio pagrindai" in name


def test_grant_revoke_and_import_keep_every_record(lab: Path, tmp_path: Path) -> None:
    r = fabqueue("trainings", "grant", "ona", "laser-basic", "--on", "2026-01-05",
                 "--data-dir", str(lab))
    assert r.returncode == 0, r.stderr
    r = fabqueue("trainings", "revoke", "ona", "laser-basic", "--data-dir", str(lab))
    assert r.returncode == 0, r.stderr
    csv = tmp_path / "list.csv"
    yesterday = (lab_today() - timedelta(days=1)).isoformat()
    csv.write_text(f"username,training,on\nona,laser-basic,{yesterday}\njonas,laser-basic,\n",
                   encoding="utf-8")
    r = fabqueue("trainings", "import", str(csv), "--data-dir", str(lab))
    assert r.returncode == 0 and "granted 2" in r.stdout, r.stderr
    got = rows(lab, "SELECT u.name, g.granted_on, g.revoked_at IS NOT NULL FROM "
                    "training_grants g JOIN users u ON u.id = g.user_id ORDER BY g.id")
    assert [(n, str(on)[:10], bool(rev)) for n, on, rev in got] == [
        ("ona", "2026-01-05", True), ("ona", yesterday, False),
        ("jonas", lab_today().isoformat(), False)]


@pytest.mark.parametrize(("line", "named"), [
    ("nobody,laser-basic,2026-01-01", "no user 'nobody'"),
    ("ona,flying,2026-01-01", "no training 'flying'"),
    ("ona,laser-basic,01/02/2026", "not a date"),
    ("ona,laser-basic,2999-01-01", "still to come"),
], ids=["user", "training", "date", "future"])
def test_bad_csv_line_is_named_and_nothing_is_imported(lab: Path, tmp_path: Path, line: str,
                                                       named: str) -> None:
    before = rows(lab, "SELECT count(*) FROM training_grants")
    csv = tmp_path / "bad.csv"
    csv.write_text(f"jonas,laser-basic,\n{line}\n", encoding="utf-8")
    r = fabqueue("trainings", "import", str(csv), "--data-dir", str(lab))
    assert r.returncode == 2 and "line 2" in r.stderr and named in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert rows(lab, "SELECT count(*) FROM training_grants") == before


@pytest.mark.parametrize(("toml", "named"), [
    ('[[training]]\nid = "t"\nvalid_days = 30\n', "needs devices"),
    ('[[maintenance]]\nid = "polish"\ndevices = ["mk4-1"]\n', "every_hours"),
    ('[[maintenance]]\nid = "x"\ntemplate = "warp-core"\nkinds = ["laser"]\n', "template"),
    ('[[maintenance]]\nid = "x"\ndevices = ["ghost"]\nevery_jobs = 5\n', "ghost"),
    ('[[training]]\nid = "t"\nkinds = ["plasma"]\n', "plasma"),
], ids=["no-devices", "no-interval", "bad-template", "unknown-device", "bad-kind"])
def test_bad_training_or_maintenance_is_refused_naming_it(tmp_path: Path, toml: str,
                                                          named: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(ISSUE_TOML + toml, encoding="utf-8")
    r = fabqueue("devices", "import", str(f), "--data-dir", str(tmp_path / "d"))
    assert r.returncode == 2 and named in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert rows(tmp_path / "d", "SELECT count(*) FROM devices") == [(0,)]
