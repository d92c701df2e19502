#!/usr/bin/env bash
# Install what FabQueue needs on a fresh Debian machine: system packages (as root, when
# missing), the project's virtual environment, and with --test the test tools (Chromium,
# admesh, Playwright, OctoPrint in its own venv). Idempotent: a second run is quick.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

apt_packages=(prusa-slicer)
if (( want_test )); then apt_packages+=(admesh chromium fonts-dejavu-core); fi
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} )); then
  if [[ $(id -u) -eq 0 ]]; then
    echo "Installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "Missing Debian packages (install them as root): ${missing[*]}" >&2
  fi
fi

python_bin="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  "$python_bin" -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
fi
if (( want_test )); then
  .venv/bin/pip install --quiet -e ".[test]"
  scripts/install_octoprint.sh
else
  .venv/bin/pip install --quiet -e ".[postgres]"
fi
