"""The peers' fixtures work wherever the checkout lives, and a peer that cannot work says why
at once instead of letting each test time out."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests import prusalink_fixtures
from tests.prusalink_fixtures import (  # noqa: F401
    PrusaLinkPeer,
    prusalink,
    refused,
    require_prusalink,
    runs_root,
)


def test_prusalink_runs_go_where_prusalink_accepts_storage(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A clone under /tmp (its .peers there too) still gets a folder outside /tmp."""
    monkeypatch.delenv("FABQUEUE_PRUSALINK_RUNS", raising=False)
    monkeypatch.setattr(prusalink_fixtures, "PEER", Path("/tmp") / tmp_path.name / "prusalink")
    root = runs_root()
    assert not refused(root), root
    assert not str(root.resolve()).startswith("/tmp/")
    assert os.access(root, os.W_OK)


def test_a_refused_explicit_folder_is_an_error_not_a_silent_500(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FABQUEUE_PRUSALINK_RUNS", "/tmp/fabqueue-prusalink-runs")
    with pytest.raises(RuntimeError, match="refuses as storage"):
        runs_root()


def test_a_prusalink_without_storage_fails_its_start_with_the_log() -> None:
    """Started on a folder it refuses (under /tmp), the real PrusaLink answers but attaches
    no storage: the start says so with its log, instead of every PUT answering 500."""
    require_prusalink()
    base = Path(tempfile.mkdtemp(prefix="fabqueue-refused-", dir="/tmp"))
    peer = PrusaLinkPeer(base)
    try:
        with pytest.raises(TimeoutError, match="attached no local storage") as failed:
            peer.start()
        assert "prusalink.out (tail)" in str(failed.value)
    finally:
        peer.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_a_prusalink_that_says_it_is_broken_is_started_afresh(
        prusalink: PrusaLinkPeer) -> None:  # noqa: F811
    """PrusaLink logs "This instance is now broken" when one of its threads died (as a
    daemon it would restart; in the foreground it goes on half dead): the next test's reset
    starts the pair again instead of handing every later test a peer that prints nothing."""
    assert prusalink.link is not None
    pid = prusalink.link.pid
    with (prusalink.base / "prusalink.out").open("ab") as f:
        f.write(b"CRITICAL {__main__.excepthook():46} [sq_sender]: This instance is now "
                b"broken. Will not restart because we're running in the foreground mode\n")
    prusalink.reset()
    assert prusalink.link.pid != pid and prusalink.state() in ("IDLE", "READY")
    again = prusalink.link.pid
    prusalink.reset()
    assert prusalink.link.pid == again  # a healthy one is kept
