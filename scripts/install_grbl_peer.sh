#!/usr/bin/env bash
# Build the real GRBL 1.1h firmware (grbl-sim, sources from ../shared/peers/grbl) into
# <repo>/.peers/grbl/ for the laser tests, installing gcc, make and socat (Debian) when
# missing. Idempotent: does nothing when the program is already built.
# Usage: scripts/install_grbl_peer.sh [OUT_DIR]   (default: <repo>/.peers/grbl)
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out_dir="${1:-$repo_root/.peers/grbl}"
peer_dir="$repo_root/../shared/peers/grbl"

missing=()
for p in gcc make socat coreutils; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} )); then
  if [[ $(id -u) -eq 0 ]]; then
    echo "Installing Debian packages for the GRBL peer: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "Missing Debian packages (install them as root): ${missing[*]}" >&2
  fi
fi

# Built here rather than by ../shared/peers/grbl/build.sh: the same sources and flags, plus
# scripts/grbl_peer/sim_yield.c, which makes the firmware's idle waits sleep instead of
# spinning a core (see that file). The stamp names that change: an older build is rebuilt.
stamp="$out_dir/.built-with-sim-yield-2"
if [[ -x "$out_dir/grbl_sim.exe" && -f "$stamp" ]]; then
  echo "GRBL firmware peer already built in $out_dir"
  exit 0
fi
for archive in gnea-grbl-bfb67f0.tar.gz grbl-sim-9bdd165.tar.gz; do
  if [[ ! -f "$peer_dir/$archive" ]]; then
    echo "GRBL peer sources not found at $peer_dir/$archive; the laser tests will fail" >&2
    exit 1
  fi
done
mkdir -p "$out_dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -xzf "$peer_dir/gnea-grbl-bfb67f0.tar.gz" -C "$work"
tar -xzf "$peer_dir/grbl-sim-9bdd165.tar.gz" -C "$work/grbl/grbl"
sim="$work/grbl/grbl/sim"
mv "$work/grbl/grbl/grbl-sim" "$sim"
cp "$repo_root/scripts/grbl_peer/sim_yield.c" "$sim/"
# GCC 10+ defaults to -fno-common; grbl-sim's headers define globals in several units
sed -i 's/^FLAGS = -g -O3$/FLAGS = -g -O3 -fcommon/' "$sim/Makefile"
sed -i 's/^SIM_OBJECTS = main.o /SIM_OBJECTS = main.o sim_yield.o /' "$sim/Makefile"
sed -i 's/^LINUX_LIBRARIES = -lrt -pthread$/LINUX_LIBRARIES = -lrt -pthread -Wl,--wrap=protocol_execute_realtime -Wl,--wrap=protocol_buffer_synchronize/' "$sim/Makefile"
# the serial hook yields only when no byte waits (a yield per byte would slow the line)
python3 - "$sim/serial.c" <<'PY'
import sys
path = sys.argv[1]
text = open(path).read()
old = "  platform_sleep(0);\n  return orig_serial_read();"
new = ("  uint8_t c = orig_serial_read();\n"
       "  if (c == SERIAL_NO_DATA) { platform_sleep(100); }\n"
       "  return c;")
assert old in text, "grbl-sim's serial_read hook changed: update install_grbl_peer.sh"
open(path, "w").write(text.replace(old, new))
PY
grep -q -- "--wrap=protocol_execute_realtime" "$sim/Makefile" && grep -q "sim_yield.o" "$sim/Makefile" \
  || { echo "grbl-sim's Makefile changed: update install_grbl_peer.sh" >&2; exit 1; }
make -s -C "$sim" clean >/dev/null 2>&1 || true
make -s -C "$sim" main >"$work/build.log" 2>&1 || { tail -20 "$work/build.log" >&2; exit 1; }
cp "$sim/grbl_sim.exe" "$out_dir/"
touch "$stamp"
echo "$out_dir/grbl_sim.exe"
