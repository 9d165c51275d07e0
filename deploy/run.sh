#!/usr/bin/env bash
# Sets everything up (deploy/setup.sh) and runs Butler in the foreground on
# the embedded default: deploy/butler.example.yaml (REST on 127.0.0.1:8080,
# MQTT to 127.0.0.1:1883, no Qlik Sense needed). If nothing listens on
# 127.0.0.1:1883, a local mosquitto is started there and stopped again when
# Butler exits. Ctrl-C stops Butler cleanly.
#
#   deploy/run.sh                      the example config
#   deploy/run.sh --config my.yaml     any other butler arguments
set -euo pipefail

top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUTLER_BUILD_DIR:-$top/build}"

"$top/deploy/setup.sh" butler
export PATH="$PATH:/usr/sbin"

args=("$@")
[ ${#args[@]} -eq 0 ] && args=(--config "$top/deploy/butler.example.yaml")

broker_pid=""
cleanup() {
  if [ -n "$broker_pid" ]; then
    kill -TERM "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

if ! (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
  conf_dir="$build/local-mosquitto"
  mkdir -p "$conf_dir"
  {
    echo "listener 1883 127.0.0.1"
    echo "allow_anonymous true"
    echo "persistence false"
    echo "log_dest file $conf_dir/mosquitto.log"
    [ "$(id -u)" -eq 0 ] && echo "user root"
  } > "$conf_dir/mosquitto.conf"
  mosquitto -c "$conf_dir/mosquitto.conf" &
  broker_pid=$!
  for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null && break
    sleep 0.1
  done
  echo "run: started a local mosquitto on 127.0.0.1:1883 (log: $conf_dir/mosquitto.log)"
fi

"$build/butler" "${args[@]}" &
butler_pid=$!
trap 'kill -TERM "$butler_pid" 2>/dev/null || true' INT TERM
rc=0
wait "$butler_pid" || rc=$?
# A signal interrupts the first wait; wait again for Butler's own exit code.
if kill -0 "$butler_pid" 2>/dev/null; then
  rc=0
  wait "$butler_pid" || rc=$?
fi
exit "$rc"
