#!/usr/bin/env bash
# README command 1: install, then run FabQueue with demo sites, users and machines.
# Extra arguments go to `fabqueue serve` (e.g. --port 8080 --data-dir /srv/fabqueue).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$repo/scripts/setup.sh"
exec "$repo/.venv/bin/fabqueue" serve --demo --data-dir "${FABQUEUE_DATA_DIR:-$repo/data}" "$@"
