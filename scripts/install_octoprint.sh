#!/usr/bin/env bash
# Install OctoPrint 1.11.8 into its own virtual environment (its pins clash with FabQueue's
# FastAPI stack, so it never goes into .venv). Idempotent: does nothing when already there.
# Usage: scripts/install_octoprint.sh [VENV_DIR]   (default: <repo>/.octoprint/venv)
set -euo pipefail

OCTOPRINT_VERSION="1.11.8"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv_dir="${1:-$repo_root/.octoprint/venv}"
python_bin="${PYTHON:-python3}"

installed_version() {
  "$venv_dir/bin/python" -c \
    'import importlib.metadata as m; print(m.version("octoprint"))' 2>/dev/null || true
}

if [[ -x "$venv_dir/bin/octoprint" && "$(installed_version)" == "$OCTOPRINT_VERSION" ]]; then
  echo "OctoPrint $OCTOPRINT_VERSION already installed in $venv_dir"
  exit 0
fi

echo "Installing OctoPrint $OCTOPRINT_VERSION into $venv_dir (needs gcc for netifaces)"
"$python_bin" -m venv "$venv_dir"
"$venv_dir/bin/pip" install --quiet --upgrade pip
"$venv_dir/bin/pip" install --quiet "octoprint==$OCTOPRINT_VERSION"
echo "OctoPrint $("$venv_dir/bin/octoprint" --version) installed in $venv_dir"
