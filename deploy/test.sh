#!/usr/bin/env bash
# Sets everything up (deploy/setup.sh) and runs every test, unit and
# integration, ending with CTest's summary. Exits non-zero if any test fails.
set -euo pipefail

top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUTLER_BUILD_DIR:-$top/build}"

"$top/deploy/setup.sh"
# mosquitto lives in /usr/sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/sbin"
cd "$build"
ctest --output-on-failure --timeout 300 "$@"
