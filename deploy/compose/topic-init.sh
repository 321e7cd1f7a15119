#!/usr/bin/env bash
# docker-compose.yml's topic-init: creates the topics of /topics.txt ("name partitions" lines) on
# TOPIC_INIT_BOOTSTRAP (default kafka:9092), retrying each call (the broker starting, a name not
# resolving yet) for at most TOPIC_INIT_TIMEOUT_S (default 300) in all, then leaves the marker
# /init-done/$TOPIC_INIT_MARKER (default topics) that the invalidators wait for
# (docker-compose.mirrored.yml's topic-init-us: kafka-us:9092, topics-us). The waiting is its
# own, so it works where compose does not honour depends_on conditions (podman-compose, podman
# without healthchecks).
set -euo pipefail

BOOTSTRAP="${TOPIC_INIT_BOOTSTRAP:-kafka:9092}"
MARKER="/init-done/${TOPIC_INIT_MARKER:-topics}"
TOPICS=/opt/kafka/bin/kafka-topics.sh
TIMEOUT_S="${TOPIC_INIT_TIMEOUT_S:-300}"
deadline=$(( $(date +%s) + TIMEOUT_S ))

# Run "$@" until it succeeds; its last output on stderr and exit 1 past the deadline.
retry() {
  local output
  until output="$("$@" 2>&1)"; do
    if (( $(date +%s) >= deadline )); then
      printf '%s\n' "${output}" | tail -n 5 >&2
      echo "topic-init: '$*' did not succeed within ${TIMEOUT_S}s" >&2
      exit 1
    fi
    sleep 1
  done
  printf '%s\n' "${output}" | grep -v '^WARNING: Due to limitations in metric names' || true
}

rm -f "${MARKER}"
retry "${TOPICS}" --bootstrap-server "${BOOTSTRAP}" --list >/dev/null
while read -r name partitions _; do
  [[ -n "${name:-}" ]] || continue
  retry "${TOPICS}" --bootstrap-server "${BOOTSTRAP}" --create --if-not-exists \
    --topic "${name}" --partitions "${partitions}" --replication-factor 1
done < <(sed 's/#.*//' /topics.txt)
touch "${MARKER}"
echo "topic-init: topics ready on ${BOOTSTRAP}"
