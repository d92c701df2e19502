"""A bounded schemathesis run over every operation of ``/openapi.json``, as a resident and as
an admin, against the real app (in-process ASGI, a stack of its own so the fuzzer's changes
to users and machines can't disturb other tests): no response may be a 5xx.

Bounded for a loaded 2-core machine: a few examples per operation, derandomized (the same
cases every run), no shrinking. Machines are the demo's simulated printers and its laser;
no device worker runs here, so nothing reaches a machine (commands wait in Redis).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Stack, build_stack

EXAMPLES = int(os.environ.get("FABQUEUE_FUZZ_EXAMPLES", "4"))


@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # always embedded: an external run would drop the schema the session stack uses
    s = build_stack(tmp_path_factory.mktemp("fuzz"), external=False)
    yield s
    if s.redis_owner is not None:
        s.redis_owner.stop()


@pytest.mark.timeout(900)
def test_no_operation_answers_5xx(fuzz_stack: Stack, tmp_path: Path) -> None:
    schemathesis = pytest.importorskip("schemathesis") if os.environ.get("CI") != "true" \
        else __import__("schemathesis")
    from hypothesis import HealthCheck, Phase, given, settings

    stack = fuzz_stack
    with stack.client() as c:
        callers = {"resident": stack.token(c, stack.user("resident", name="fuzz-resident")),
                   "admin": stack.token(c, stack.user("admin", name="fuzz-admin"))}
    schema = schemathesis.openapi.from_asgi("/openapi.json", stack.app)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            # the live-updates stream never ends by itself: keep what it sent within 1 s (its
            # first event comes at once) instead of the client's 10 s read deadline per call
            stream_limit = {"timeout": 1} if case.operation.path == "/api/events" else {}
            for role, headers in callers.items():
                try:
                    response = case.call(headers={**(case.headers or {}), **headers},
                                         **stream_limit)
                except Exception as exc:  # the app raised: a 500 the client saw as an error
                    failures.append(f"{role} {case.method} {case.formatted_path}: {exc!r}")
                    continue
                if response.status_code >= 500:
                    failures.append(f"{role} {case.method} {case.formatted_path} "
                                    f"{response.status_code}: {response.text[:200]}")

        run()
    assert operations >= 30  # every operation of the API was walked
    report = "\n".join(sorted(set(failures)))
    (Path(__file__).resolve().parents[1] / "test-artifacts").mkdir(exist_ok=True)
    (Path(__file__).resolve().parents[1] / "test-artifacts" / "fuzz-5xx.txt").write_text(report)
    assert failures == [], report[:4000]
