#!/usr/bin/env bash
# Install the PrusaLink test peer: the real `prusalink` server from PyPI in a venv of its own
# (it pins pydantic 1.10) under <repo>/.peers/prusalink/, plus the Debian libraries it loads
# (libcap-dev for python-prctl, libturbojpeg0, libmagic1). The tests put our Prusa-firmware
# responder (tests/peers/prusa_firmware.py) on a pseudo-terminal in front of it; see
# ../shared/peers/prusalink/README.md. Idempotent: does nothing when already there.
# Usage: scripts/install_prusalink_peer.sh [PEER_DIR]   (default: <repo>/.peers/prusalink)
set -euo pipefail

PRUSALINK_VERSION="0.8.1"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
peer_dir="${1:-$repo_root/.peers/prusalink}"
python_bin="${PYTHON:-python3}"

debs=(libcap-dev libturbojpeg0 libmagic1)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} )); then
  if [[ $(id -u) -eq 0 ]]; then
    echo "Installing Debian packages for PrusaLink: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "PrusaLink peer: missing Debian packages (install them as root): ${missing[*]}" >&2
    exit 1
  fi
fi

installed() {
  "$peer_dir/venv/bin/python" -c \
    'import importlib.metadata as m; print(m.version("prusalink"))' 2>/dev/null || true
}
if [[ "$(installed)" != "$PRUSALINK_VERSION" ]]; then
  echo "Installing PrusaLink $PRUSALINK_VERSION into $peer_dir/venv"
  mkdir -p "$peer_dir"
  "$python_bin" -m venv "$peer_dir/venv"
  "$peer_dir/venv/bin/pip" install --quiet --upgrade pip
  "$peer_dir/venv/bin/pip" install --quiet "prusalink==$PRUSALINK_VERSION"
fi
echo "PrusaLink peer ready in $peer_dir"
