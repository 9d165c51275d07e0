#!/bin/bash
# Health check of Butler's container image (its HEALTHCHECK): asks Butler's
# readiness endpoint, GET /readyz, and exits 0 on "200", 1 otherwise. The
# image has no curl or wget, so the request goes through bash's /dev/tcp.
#
# Where it asks, from the environment:
#   BUTLER_HEALTHCHECK_HOST  default 127.0.0.1 (serverHost 0.0.0.0 listens there too)
#   BUTLER_HEALTHCHECK_PORT  default 8080, restServerConfig.serverPort. With
#                            restServerConfig.tls on, use the plain-HTTP
#                            dockerHealthCheck port (12398 by default), which
#                            serves /readyz as well.
#   BUTLER_HEALTHCHECK_PATH  default /readyz; /healthz asks liveness only
#
# On failure it prints the status line and the body (Butler names the part
# that is not ready), which `docker inspect` / `podman healthcheck run` show.
set -u

host="${BUTLER_HEALTHCHECK_HOST:-127.0.0.1}"
port="${BUTLER_HEALTHCHECK_PORT:-8080}"
path="${BUTLER_HEALTHCHECK_PATH:-/readyz}"

# (bash's own "connect: Connection refused" is hidden: the line below says it.)
if ! { exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null; then
  echo "butler-healthcheck: nothing answers on $host:$port" >&2
  exit 1
fi
printf 'GET %s HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n\r\n' \
  "$path" "$host" "$port" >&3

status=""
IFS= read -r -t 5 status <&3
status="${status%$'\r'}"
case "$status" in
  "HTTP/1."[01]" 200"*) exit 0 ;;
esac

# Not ready: skip the headers, print the status line and the body.
while IFS= read -r -t 2 line <&3 && [ -n "${line%$'\r'}" ]; do :; done
body=""
IFS= read -r -d '' -t 2 body <&3
echo "butler-healthcheck: GET $path on $host:$port answered: ${status:-nothing}${body:+ $body}" >&2
exit 1
