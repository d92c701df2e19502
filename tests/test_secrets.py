"""No default key signs a login: placeholders and short keys are refused, the generated key
in the data folder is the default and is readable by its owner only."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from fabqueue.config import MAKE_SECRET, Settings, WeakSecret, check_secret

GOOD = "Zq8vN3xK_pL2mW7rT5yB9cD1fG4hJ6kS0aE"  # 35 bytes, varied


@pytest.mark.parametrize("key", [
    "change-me", "changeme", "CHANGE_ME", "secret", "please-change", "Please-Change-Me",
    "change-me-change-me-change-me-change-me", "this-is-my-default-key-for-fabqueue-0123",
    "short-but-random-Xk29", "a" * 64, "abababababababababababababababababab",
])
def test_weak_keys_are_refused_with_how_to_make_one(key: str) -> None:
    with pytest.raises(WeakSecret) as raised:
        check_secret(key)
    assert MAKE_SECRET in str(raised.value)


def test_a_real_key_passes() -> None:
    check_secret(GOOD)
    check_secret(__import__("secrets").token_urlsafe(48))


def test_settings_refuse_a_configured_placeholder(tmp_path: Path) -> None:
    with pytest.raises(WeakSecret):
        Settings(data_dir=tmp_path, secret_key="change-me").effective_secret()
    assert Settings(data_dir=tmp_path, secret_key=GOOD).effective_secret() == GOOD


def test_the_generated_key_is_the_default_and_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    key = settings.effective_secret()
    check_secret(key)
    path = tmp_path / "data" / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Settings(data_dir=tmp_path / "data").effective_secret() == key  # kept, not renewed
    path.chmod(0o644)  # an older data folder: tightened on the next start
    Settings(data_dir=tmp_path / "data").effective_secret()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_create_app_refuses_a_weak_key(tmp_path: Path) -> None:
    from fabqueue.queue.context import Context
    from fabqueue.web.app import create_app

    with pytest.raises(WeakSecret):
        create_app(Context(Settings(data_dir=tmp_path, secret_key="secret")))


def test_serve_refuses_a_placeholder_key_and_says_how_to_make_one(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(FABQUEUE_DATA_DIR=str(tmp_path / "data"), FABQUEUE_SECRET_KEY="change-me")
    done = subprocess.run([sys.executable, "-m", "fabqueue", "serve", "--port", "0"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2
    assert "FABQUEUE_SECRET_KEY is a known placeholder" in done.stderr
    assert "secrets.token_urlsafe(48)" in done.stderr
    assert not (tmp_path / "data" / "fabqueue.sqlite3").exists()  # stopped before anything
