"""The ``fabqueue`` command as an operator runs it: users and machines into a data folder
that is created and migrated on first use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXTERNAL, own_database, query

# Run again on PostgreSQL on the external pass: each data folder gets a database of its own.
pytestmark = pytest.mark.stack

ISSUE_TOML = '''\
[[site]]
id = "kc"
name = "Visagino kultūros centras"
[[device]]
id = "mk4-1"
site = "kc"
kind = "printer"
driver = "octoprint"              # or "simulated"
url = "http://127.0.0.1:5000"
api_key_env = "FABQUEUE_DEVICE_MK4_1_KEY" # the secret stays in the environment
build_volume_mm = [250, 210, 220]
materials = ["PLA", "PETG"]
profile = "prusa_mk4"
[[device]]
id = "laser-1"
site = "kc"
kind = "laser"
driver = "grbl"                   # or "simulated"
port = "/dev/ttyUSB0"
baud = 115200
bed_mm = [600, 400]
materials = ["plywood-3mm", "acrylic-3mm"]
'''


def fabqueue(*args: str, stdin: str = "", env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if k not in ("FABQUEUE_DATA_DIR", "DATABASE_URL", "REDIS_URL")}
    env = env or {}
    data_dir = args[args.index("--data-dir") + 1] if "--data-dir" in args \
        else env.get("FABQUEUE_DATA_DIR")
    if data_dir:
        base.update(own_database(str(Path(data_dir))))
    return subprocess.run([sys.executable, "-m", "fabqueue", *args], input=stdin,
                          capture_output=True, text=True, timeout=60, env={**base, **env})


def rows(data_dir: Path, sql: str) -> list[tuple]:
    return query(data_dir, sql)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder that does not exist yet: the first command creates and migrates it."""
    return tmp_path_factory.mktemp("cli") / "fresh" / "data"


@pytest.fixture(scope="module")
def imported(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    toml = tmp_path_factory.mktemp("toml") / "lab.toml"
    toml.write_text(ISSUE_TOML, encoding="utf-8")
    r = fabqueue("devices", "import", str(toml), "--data-dir", str(data_dir))
    assert r.returncode == 0, r.stderr
    assert "added site kc" in r.stdout and "added device laser-1" in r.stdout
    return toml


def test_import_the_issue_example(data_dir: Path, imported: Path) -> None:
    devices = dict(rows(data_dir, "SELECT id, kind || ' ' || driver || ' ' || site_id "
                                  "FROM devices"))
    assert devices == {"mk4-1": "printer octoprint kc", "laser-1": "laser grbl kc"}
    assert rows(data_dir, "SELECT name FROM sites") == [("Visagino kultūros centras",)]
    (connection,) = rows(data_dir, "SELECT connection FROM devices WHERE id='mk4-1'")[0]
    assert "FABQUEUE_DEVICE_MK4_1_KEY" in connection and "api_key\"" not in connection


def test_reimport_updates(data_dir: Path, imported: Path) -> None:
    imported.write_text(ISSUE_TOML.replace("baud = 115200", "baud = 57600")
                        .replace("[600, 400]", "[900, 600]"), encoding="utf-8")
    r = fabqueue("devices", "import", str(imported), "--data-dir", str(data_dir))
    assert r.returncode == 0, r.stderr
    assert "updated device laser-1" in r.stdout and "added" not in r.stdout
    (connection, size), = rows(data_dir, "SELECT connection, size_mm FROM devices "
                                         "WHERE id='laser-1'")
    assert '"baud": 57600' in connection and size == "[900.0, 600.0]"
    assert rows(data_dir, "SELECT count(*) FROM devices") == [(2,)]
    listed = fabqueue("devices", "list", "--data-dir", str(data_dir))
    assert "laser-1\tkc\tlaser\tgrbl" in listed.stdout


@pytest.mark.parametrize(("change", "named"), [
    (('api_key_env = "FABQUEUE_DEVICE_MK4_1_KEY"', 'api_key = "s3cr3t-key"'), "api_key"),
    (('api_key_env = "FABQUEUE_DEVICE_MK4_1_KEY"', 'api_key_env = "FABQUEUE_SECRET_KEY"'),
     "FABQUEUE_DEVICE_"),
    (("build_volume_mm", "build_volum_mm"), "build_volum_mm"),
    (('kind = "laser"', 'kind = "plasma"'), "kind"),
    (('site = "kc"\nkind = "laser"', 'site = "nowhere"\nkind = "laser"'), "nowhere"),
    (('baud = 115200', 'baud = "fast"'), "baud"),
], ids=["secret", "settings-variable", "typo", "bad-kind", "unknown-site", "bad-baud"])
def test_bad_toml_is_refused_naming_the_key(tmp_path: Path, change: tuple[str, str],
                                            named: str) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text(ISSUE_TOML.replace(*change), encoding="utf-8")
    r = fabqueue("devices", "import", str(toml), "--data-dir", str(tmp_path / "d"))
    assert r.returncode == 2
    assert named in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert rows(tmp_path / "d", "SELECT count(*) FROM devices") == [(0,)]  # all or nothing
    if not EXTERNAL:
        assert "s3cr3t-key" not in (tmp_path / "d" / "fabqueue.sqlite3").read_bytes().decode(
            "latin-1")


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    toml = tmp_path / "broken.toml"
    toml.write_text("[[device]\nid = ", encoding="utf-8")
    r = fabqueue("devices", "import", str(toml), "--data-dir", str(tmp_path / "d"))
    assert r.returncode == 2 and "broken.toml" in r.stderr


def test_users_add_with_password_from_stdin(data_dir: Path, imported: Path) -> None:
    r = fabqueue("users", "add", "ona", "--role", "staff", "--site", "kc",
                 "--password-stdin", "--data-dir", str(data_dir), stdin="correct horse 1\n")
    assert r.returncode == 0, r.stderr
    assert "added staff ona" in r.stdout
    (role, site, pw_hash), = rows(data_dir, "SELECT role, site_id, password_hash FROM users "
                                            "WHERE name='ona'")
    assert (role, site) == ("staff", "kc")
    assert pw_hash.startswith("$argon2") and "correct horse" not in pw_hash
    from argon2 import PasswordHasher

    assert PasswordHasher().verify(pw_hash, "correct horse 1")


@pytest.mark.parametrize(("args", "words"), [
    (("--role", "teacher"), "site"),
    (("--role", "wizard"), "resident, teacher, staff, admin"),
    (("--role", "staff", "--site", "atlantis"), "atlantis"),
], ids=["teacher-without-site", "unknown-role", "unknown-site"])
def test_users_add_errors(data_dir: Path, imported: Path, args: tuple[str, ...],
                          words: str) -> None:
    r = fabqueue("users", "add", "petras", *args, "--password-stdin", "--data-dir",
                 str(data_dir), stdin="long enough password\n")
    assert r.returncode == 2
    assert words in r.stderr
    assert rows(data_dir, "SELECT count(*) FROM users WHERE name='petras'") == [(0,)]


def test_short_password_and_duplicate_names_are_refused(data_dir: Path,
                                                        imported: Path) -> None:
    r = fabqueue("users", "add", "jurga", "--role", "resident", "--password-stdin",
                 "--data-dir", str(data_dir), stdin="short\n")
    assert r.returncode == 2 and "8 characters" in r.stderr
    for expected in (0, 2):
        r = fabqueue("users", "add", "jurga", "--role", "resident", "--password-stdin",
                     "--data-dir", str(data_dir), stdin="long enough password\n")
        assert r.returncode == expected, r.stderr
    assert "exists" in r.stderr


def test_data_dir_from_the_environment(tmp_path: Path) -> None:
    env = {"FABQUEUE_DATA_DIR": str(tmp_path / "env-data")}
    r = fabqueue("users", "add", "admin", "--role", "admin", "--password-stdin", env=env,
                 stdin="long enough password\n")
    assert r.returncode == 0, r.stderr
    r = fabqueue("users", "list", env=env)
    assert r.returncode == 0 and "\tadmin\tadmin\t-\tactive" in r.stdout
    assert rows(tmp_path / "env-data", "SELECT version_num FROM alembic_version")


def test_users_add_prompts_twice_for_the_password(data_dir: Path, imported: Path) -> None:
    r = fabqueue("users", "add", "vida", "--role", "resident", "--data-dir", str(data_dir),
                 stdin="first password\nsecond password\nfirst password\nfirst password\n")
    assert r.returncode == 0, r.stderr
    assert "do not match" in (r.stdout + r.stderr).lower()
    (pw_hash,), = rows(data_dir, "SELECT password_hash FROM users WHERE name='vida'")
    from argon2 import PasswordHasher

    assert PasswordHasher().verify(pw_hash, "first password")
