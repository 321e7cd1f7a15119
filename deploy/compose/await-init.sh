#!/bin/sh
# The entrypoint of docker-compose.yml's invalidators (and docker-compose.mirrored.yml's
# MirrorMaker services): waits (at most INIT_TIMEOUT_S, default 360) for the markers the one-shot
# services leave in /init-done (INIT_MARKERS, default "topics redis": topic-init's and
# redis-init's), then runs INIT_EXEC (default invalidator) with the arguments.
# Docker Compose starts the invalidators only after both (depends_on conditions) and the wait
# ends at once; compose implementations that ignore the conditions start them together.
set -eu

timeout_s="${INIT_TIMEOUT_S:-360}"
markers="${INIT_MARKERS:-topics redis}"
deadline=$(( $(date +%s) + timeout_s ))
for marker in ${markers}; do
  until [ -e "/init-done/${marker}" ]; do
    if [ "$(date +%s)" -ge "${deadline}" ]; then
      echo "await-init: /init-done/${marker} not there within ${timeout_s}s (waiting for: ${markers})" >&2
      exit 1
    fi
    sleep 1
  done
done
exec "${INIT_EXEC:-invalidator}" "$@"
