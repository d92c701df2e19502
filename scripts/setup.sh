#!/usr/bin/env bash
# Install what FabQueue needs on a fresh Debian machine: system packages (as root, when
# missing), the project's virtual environment, and with --test the test tools (Chromium,
# admesh, Playwright, OctoPrint in its own venv). Idempotent: a second run is quick.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

# fonts-dejavu-core: pickup labels (PDF) print place names with Lithuanian and Russian letters
apt_packages=(prusa-slicer fonts-dejavu-core)
if (( want_test )); then apt_packages+=(admesh chromium); fi
# fabqueue backup/restore on PostgreSQL: pg_dump/pg_restore (the backup test uses them too)
apt_packages+=(postgresql-client)
# Bambu Lab test printer (issue 12): a real MQTT broker with TLS; openssl makes its cert
if (( want_test )); then apt_packages+=(mosquitto openssl); fi
# the peers' own packages, in this one apt-get (their scripts below then find them and
# skip theirs, so they can run at once): GRBL builds with gcc/make and runs under socat;
# PrusaLink loads libcap, libturbojpeg and libmagic
if (( want_test )); then
  apt_packages+=(gcc make socat coreutils libcap-dev libturbojpeg0 libmagic1)
fi
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
  # The project's venv and the four peers share nothing (each its own venv or build
  # folder): install them at once, each into a log of its own, shown when it fails.
  # OctoPrint in its own venv; real Moonraker + Klippy, real PrusaLink 0.8.1 (issue 12);
  # the real GRBL 1.1h firmware (grbl-sim) the laser tests run against.
  mkdir -p .peers
  pids=()
  names=(project octoprint klipper prusalink grbl spoolman)
  .venv/bin/pip install --quiet -e ".[test]" >.peers/setup-project.log 2>&1 & pids+=($!)
  scripts/install_octoprint.sh >.peers/setup-octoprint.log 2>&1 & pids+=($!)
  scripts/install_klipper_peer.sh >.peers/setup-klipper.log 2>&1 & pids+=($!)
  scripts/install_prusalink_peer.sh >.peers/setup-prusalink.log 2>&1 & pids+=($!)
  scripts/install_grbl_peer.sh >.peers/setup-grbl.log 2>&1 & pids+=($!)
  # the real Spoolman server (issue 18), from ../shared/peers/spoolman
  scripts/install_spoolman_peer.sh >.peers/setup-spoolman.log 2>&1 & pids+=($!)
  failed=0
  for i in "${!pids[@]}"; do
    if wait "${pids[$i]}"; then
      echo "${names[$i]} ready (its log: .peers/setup-${names[$i]}.log)"
    else
      echo "setup of ${names[$i]} failed:" >&2
      cat ".peers/setup-${names[$i]}.log" >&2
      failed=1
    fi
  done
  (( failed == 0 )) || exit 1
else
  .venv/bin/pip install --quiet -e ".[postgres]"
fi
