#!/bin/sh
# The invalidators' entrypoint in docker-compose.yml: waits (at most INIT_TIMEOUT_S, default 180)
# for the markers of topic-init and redis-init, then runs `invalidator` with the arguments.
# Docker Compose starts the invalidators only after both (depends_on conditions) and the wait
# ends at once; compose implementations that ignore the conditions start them together.
set -eu

timeout_s="${INIT_TIMEOUT_S:-180}"
deadline=$(( $(date +%s) + timeout_s ))
until [ -e /init-done/topics ] && [ -e /init-done/redis ]; do
  if [ "$(date +%s)" -ge "${deadline}" ]; then
    echo "await-init: topic-init and redis-init not done within ${timeout_s}s" >&2
    exit 1
  fi
  sleep 1
done
exec invalidator "$@"
