"""Pytest fixtures that start real OctoPrint 1.11 instances with their Virtual Printer.

The session fixtures ``octoprint_instance`` and ``octoprint_pair`` are registered once in
tests/conftest.py (a session fixture imported into several test modules is a fixture of
each: a server started once per module, all kept to the session's end).
``octoprint_instance`` yields one ``OctoPrintInstance`` (``.url``, ``.api_key``,
``.basedir``), ``octoprint_pair`` two independent ones (a printer pool); both are
session-scoped, listen on free ports of 127.0.0.1, and are stopped at the end of the session.
Leave the printer idle when your test ends (``ensure_idle``): other tests share it.

OctoPrint lives in its own virtual environment (``scripts/install_octoprint.sh``, default
``.octoprint/venv``, or ``$FABQUEUE_OCTOPRINT_VENV``). Without it the tests are skipped, except
under CI (``CI=true``), where a missing OctoPrint is a failure, not a silent skip.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _load_instance_module() -> ModuleType:
    """scripts/ is not a package: load scripts/octoprint_instance.py by path."""
    name = "fabqueue_octoprint_instance"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" /
                                                  "octoprint_instance.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


octoprint_instance_module = _load_instance_module()
OctoPrintInstance = octoprint_instance_module.OctoPrintInstance


def require_octoprint() -> None:
    """Skip (or fail under CI) when OctoPrint is not installed."""
    if octoprint_instance_module.octoprint_available():
        return
    where = octoprint_instance_module.octoprint_executable()
    reason = f"OctoPrint not installed at {where}: run scripts/install_octoprint.sh"
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"CI is set but {reason}", pytrace=False)
    pytest.skip(reason)


def start_instance(basedir: Path) -> OctoPrintInstance:  # type: ignore[valid-type]
    """A fresh OctoPrint (for tests that kill or reconfigure it); caller stops it."""
    require_octoprint()
    instance = OctoPrintInstance(basedir)
    with said_why(instance):
        return instance.start()


@contextlib.contextmanager
def said_why(*instances: OctoPrintInstance) -> Iterator[None]:  # type: ignore[valid-type]
    """A start that fails says why: its error with the tail of OctoPrint's own log (the
    session fixtures then fail every test that needs it at once with the same reason)."""
    try:
        yield
    except (OSError, RuntimeError, TimeoutError) as exc:
        tails = []
        for instance in instances:
            log = instance.basedir / "serve.log"
            text = log.read_text(errors="replace")[-2500:] if log.exists() else "(none)"
            tails.append(f"--- {log} (tail) ---\n{text}")
        raise RuntimeError(f"OctoPrint peer did not start: {exc}\n" + "\n".join(tails)) from exc


def ensure_idle(instance: OctoPrintInstance, timeout_s: float = 15.0) -> None:  # type: ignore[valid-type]
    """Cancel whatever runs and wait until the printer is Operational again."""
    request = octoprint_instance_module.request
    request(f"{instance.url}/api/job", instance.api_key, "POST", {"command": "cancel"})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status, body = request(f"{instance.url}/api/job", instance.api_key)
        if status == 200 and isinstance(body, dict) and body.get("state") == "Operational":
            return
        time.sleep(0.2)
    raise TimeoutError(f"OctoPrint on {instance.url} did not return to Operational")


@pytest.fixture(scope="session")
def octoprint_instance(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OctoPrintInstance]:  # type: ignore[valid-type]
    require_octoprint()
    instance = OctoPrintInstance(tmp_path_factory.mktemp("octoprint"))
    try:
        with said_why(instance):
            instance.start()
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="session")
def octoprint_pair(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[OctoPrintInstance, OctoPrintInstance]]:  # type: ignore[valid-type]
    require_octoprint()
    first = OctoPrintInstance(tmp_path_factory.mktemp("octoprint-a"))
    second = OctoPrintInstance(tmp_path_factory.mktemp("octoprint-b"))
    try:
        with said_why(first, second):
            first.launch()  # both boot at once: ~half the wait
            second.launch()
            first.ready()
            second.ready()
        yield first, second
    finally:
        first.stop()
        second.stop()
