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
# fabqueue backup/restore on PostgreSQL: pg_dump/pg_restore (the backup test uses them too)
apt_packages+=(postgresql-client)
# Bambu Lab test printer (issue 12): a real MQTT broker with TLS; openssl makes its cert
if (( want_test )); then apt_packages+=(mosquitto openssl); fi
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
  # Klipper test peer (issue 12): real Moonraker + Klippy in their own venvs under .peers/
  scripts/install_klipper_peer.sh
  # PrusaLink test peer (issue 12): real PrusaLink 0.8.1 in its own venv under .peers/
  scripts/install_prusalink_peer.sh
  # the real GRBL 1.1h firmware (grbl-sim) the laser tests run against
  scripts/install_grbl_peer.sh
else
  .venv/bin/pip install --quiet -e ".[postgres]"
fi
