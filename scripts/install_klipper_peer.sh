#!/usr/bin/env bash
# Install the Klipper test peer: real Moonraker (PyPI, its own venv: it pins its own
# paho-mqtt) and Klippy from ../shared/peers/klipper's tarball (its own venv), both under
# <repo>/.peers/klipper/. Klippy runs with no MCU (batch mode) in the tests; see
# ../shared/peers/klipper/README.md. Idempotent: does nothing when already there.
# Usage: scripts/install_klipper_peer.sh [PEER_DIR]   (default: <repo>/.peers/klipper)
set -euo pipefail

MOONRAKER_VERSION="0.11.0"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
peer_dir="${1:-$repo_root/.peers/klipper}"
shared="${FABQUEUE_SHARED:-$repo_root/../shared}/peers/klipper"
python_bin="${PYTHON:-python3}"
tarball="$shared/klipper-klippy-84104bb.tar.gz"

moonraker_version() {
  "$peer_dir/moonraker-venv/bin/python" -c \
    'import importlib.metadata as m; print(m.version("moonraker"))' 2>/dev/null || true
}

if [[ ! -f "$tarball" ]]; then
  echo "Klipper peer: $tarball is missing" >&2
  exit 1
fi
mkdir -p "$peer_dir"

if [[ "$(moonraker_version)" != "$MOONRAKER_VERSION" ]]; then
  echo "Installing Moonraker $MOONRAKER_VERSION into $peer_dir/moonraker-venv"
  "$python_bin" -m venv "$peer_dir/moonraker-venv"
  "$peer_dir/moonraker-venv/bin/pip" install --quiet --upgrade pip
  "$peer_dir/moonraker-venv/bin/pip" install --quiet "moonraker==$MOONRAKER_VERSION"
fi

if ! "$peer_dir/klippy-venv/bin/python" -c 'import cffi, greenlet, jinja2, serial, markupsafe' \
    2>/dev/null; then
  echo "Installing Klippy's Python packages into $peer_dir/klippy-venv (needs gcc)"
  "$python_bin" -m venv "$peer_dir/klippy-venv"
  "$peer_dir/klippy-venv/bin/pip" install --quiet --upgrade pip
  "$peer_dir/klippy-venv/bin/pip" install --quiet cffi greenlet jinja2 pyserial markupsafe
fi

stamp="$peer_dir/klipper/.from-$(basename "$tarball")"
if [[ ! -f "$stamp" ]]; then
  echo "Unpacking Klippy into $peer_dir/klipper"
  rm -rf "$peer_dir/klipper"
  tar -xzf "$tarball" -C "$peer_dir"  # the tarball holds klipper/{klippy,COPYING}
  touch "$stamp"
fi
cp "$shared/klipper.dict" "$shared/printer.cfg" "$peer_dir/"
# Compile Klippy's C helper now (else the first start in a test pays ~2 s for it).
"$peer_dir/klippy-venv/bin/python" -c \
  "import sys; sys.path.insert(0, '$peer_dir/klipper/klippy'); import chelper; chelper.get_ffi()" \
  >/dev/null
echo "Klipper peer ready in $peer_dir"
