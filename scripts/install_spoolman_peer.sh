#!/usr/bin/env bash
# Install the Spoolman test peer: the real Spoolman 0.26.1 server (Donkie/Spoolman @ a9e5055,
# MIT) from ../shared/peers/spoolman, in a venv of its own under <repo>/.peers/spoolman/, with
# the placeholder web client it needs to start (the REST API does not use it). The tests start
# it with tests/spoolman_fixtures.py; see ../shared/peers/spoolman/README.md.
# Idempotent: does nothing when already there.
# Usage: scripts/install_spoolman_peer.sh [PEER_DIR]   (default: <repo>/.peers/spoolman)
set -euo pipefail

SPOOLMAN_VERSION="0.26.1"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
peer_dir="${1:-$repo_root/.peers/spoolman}"
source_tar="${SPOOLMAN_TAR:-$repo_root/../shared/peers/spoolman/spoolman-a9e5055.tar.gz}"
python_bin="${PYTHON:-python3}"
app_dir="$peer_dir/spoolman-$SPOOLMAN_VERSION"

if [[ ! -f "$app_dir/spoolman/main.py" ]]; then
  [[ -f "$source_tar" ]] || { echo "Spoolman sources not found: $source_tar" >&2; exit 1; }
  mkdir -p "$peer_dir"
  tar -xzf "$source_tar" -C "$peer_dir"
fi
# it refuses to start without the web client's build folder; a placeholder is enough
mkdir -p "$app_dir/client_v2/build"
[[ -f "$app_dir/client_v2/build/index.html" ]] || \
  echo '<!doctype html><title>Spoolman</title>' > "$app_dir/client_v2/build/index.html"

if [[ ! -f "$peer_dir/venv/.installed-$SPOOLMAN_VERSION" ]]; then
  echo "Installing Spoolman $SPOOLMAN_VERSION's dependencies into $peer_dir/venv"
  "$python_bin" -m venv "$peer_dir/venv"
  "$peer_dir/venv/bin/pip" install --quiet --upgrade pip
  "$peer_dir/venv/bin/pip" install --quiet "uvicorn~=0.34" "fastapi~=0.115" \
    "SQLAlchemy[aiosqlite,asyncio]~=2.0" "pydantic~=2.10" "platformdirs~=4.3" \
    "alembic~=1.15" "scheduler~=0.8" "httpx~=0.28" "hishel~=0.1" "websockets~=15.0" \
    "prometheus-client~=0.21" setuptools
  touch "$peer_dir/venv/.installed-$SPOOLMAN_VERSION"
fi
echo "Spoolman peer ready in $app_dir"
