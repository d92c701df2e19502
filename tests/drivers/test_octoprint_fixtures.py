"""The OctoPrint fixtures skip without OctoPrint, but fail under CI instead of hiding it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.octoprint_fixtures import require_octoprint


def test_missing_octoprint_skips_locally(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FABQUEUE_OCTOPRINT_VENV", str(tmp_path / "no-venv"))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"install_octoprint\.sh"):
        require_octoprint()


def test_missing_octoprint_fails_under_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FABQUEUE_OCTOPRINT_VENV", str(tmp_path / "no-venv"))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        require_octoprint()
