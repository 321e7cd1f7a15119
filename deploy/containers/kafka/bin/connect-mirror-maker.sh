#!/bin/bash
# MirrorMaker 2 in dedicated mode, as Kafka's bin/connect-mirror-maker.sh: the main class
# org.apache.kafka.connect.mirror.MirrorMaker with the given mm2.properties (and optionally
# --clusters ALIAS...), heap -Xms256M -Xmx2G unless KAFKA_HEAP_OPTS says otherwise, logging at
# INFO on stdout (/etc/kafka/docker/connect-log4j2.yaml) unless KAFKA_LOG4J_OPTS says otherwise.
# Usage: connect-mirror-maker.sh MM2_PROPERTIES [--clusters ALIAS...]
set -eu

export KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256M -Xmx2G}"
export KAFKA_LOG4J_OPTS="${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=/etc/kafka/docker/connect-log4j2.yaml}"
exec /opt/kafka/bin/kafka-run-class.sh org.apache.kafka.connect.mirror.MirrorMaker "$@"
