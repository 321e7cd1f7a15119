#!/bin/bash
# Starts a broker and/or controller: kafka.Kafka with the given server.properties (and any
# --override property=value), a 1 GiB heap unless KAFKA_HEAP_OPTS says otherwise, and the
# server's log4j2 config (console) unless KAFKA_LOG4J_OPTS says otherwise.
# Usage: kafka-server-start.sh server.properties [--override property=value]*
set -eu

if [ $# -lt 1 ]; then
  echo "USAGE: $0 server.properties [--override property=value]*" >&2
  exit 1
fi
if [ "$1" = -daemon ]; then
  echo "$0: -daemon is not supported in this image; the server runs in the foreground" >&2
  exit 2
fi

if [ -z "${KAFKA_LOG4J_OPTS:-}" ]; then
  if [ -f /opt/kafka/config/log4j2.yaml ]; then
    export KAFKA_LOG4J_OPTS="-Dlog4j2.configurationFile=/opt/kafka/config/log4j2.yaml"
  else
    export KAFKA_LOG4J_OPTS="-Dlog4j2.configurationFile=/etc/kafka/docker/log4j2.yaml"
  fi
fi
export KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx1G -Xms1G}"

exec /opt/kafka/bin/kafka-run-class.sh kafka.Kafka "$@"
