#!/usr/bin/env bash
# Installs what Butler needs from Debian 12's packages (only those missing)
# and configures and builds it with CMake into build/. Safe to run again.
#
#   deploy/setup.sh            build everything (service and tests)
#   deploy/setup.sh butler     build only the service binary
set -euo pipefail

top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUTLER_BUILD_DIR:-$top/build}"

# Each package and why it is here: see README.md, "Dependencies".
packages=(
  build-essential cmake ninja-build pkg-config
  libcaf-dev libboost1.81-dev libssl-dev openssl
  libpaho-mqtt-dev nlohmann-json3-dev libspdlog-dev libyaml-cpp-dev libcli11-dev
  libcurl4-openssl-dev libkainjow-mustache-dev libsystemd-dev prometheus-cpp-dev
  libgtest-dev libgmock-dev
  mosquitto mosquitto-clients python3 python3-yaml systemd prometheus
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

cmake -S "$top" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
# Two compile jobs fit a 2-core, 4 GiB machine (each job peaks near 0.7 GiB).
jobs="${BUTLER_BUILD_JOBS:-$(nproc)}"
if [ $# -gt 0 ]; then
  cmake --build "$build" -j "$jobs" --target "$@"
else
  cmake --build "$build" -j "$jobs"
fi
