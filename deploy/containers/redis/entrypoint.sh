#!/bin/sh
# redis:7's entrypoint rules: options alone run redis-server with them, and redis-server started
# as root runs as the user redis (after taking ownership of the working directory).
set -e

case "${1:-}" in
  -*|*.conf) set -- redis-server "$@" ;;
esac

if [ "${1:-}" = redis-server ] && [ "$(id -u)" = 0 ]; then
  find . \! -user redis -exec chown redis '{}' + 2>/dev/null || true
  exec setpriv --reuid=redis --regid=redis --init-groups "$@"
fi

exec "$@"
