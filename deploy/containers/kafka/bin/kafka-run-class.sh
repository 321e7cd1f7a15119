#!/bin/bash
# Runs a Kafka main class on /opt/kafka/libs with the JVM settings Kafka's scripts take from the
# environment: KAFKA_HEAP_OPTS (default -Xmx256M), KAFKA_JVM_PERFORMANCE_OPTS (G1, as Kafka's
# default), KAFKA_GC_LOG_OPTS, KAFKA_JMX_OPTS (+ JMX_PORT), KAFKA_LOG4J_OPTS (default: the tools'
# log4j2 config, warnings to stderr), KAFKA_OPTS, CLASSPATH (put before the jars).
# Usage: kafka-run-class.sh CLASS [ARGS...]
set -eu

if [ $# -lt 1 ]; then
  echo "usage: $0 CLASS [ARGS...]" >&2
  exit 2
fi
KAFKA_HOME_DIR=/opt/kafka

classpath="${KAFKA_HOME_DIR}/libs/*"
if [ -n "${CLASSPATH:-}" ]; then classpath="${CLASSPATH}:${classpath}"; fi

heap_opts="${KAFKA_HEAP_OPTS:--Xmx256M}"
performance_opts="${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -Djava.awt.headless=true}"
jmx_opts="${KAFKA_JMX_OPTS:--Dcom.sun.management.jmxremote -Dcom.sun.management.jmxremote.authenticate=false -Dcom.sun.management.jmxremote.ssl=false}"
if [ -n "${JMX_PORT:-}" ]; then
  jmx_opts="${jmx_opts} -Dcom.sun.management.jmxremote.port=${JMX_PORT}"
  if [ -z "${KAFKA_JMX_OPTS:-}" ] || [ "${KAFKA_JMX_OPTS#*jmxremote.rmi.port}" = "${KAFKA_JMX_OPTS}" ]; then
    jmx_opts="${jmx_opts} -Dcom.sun.management.jmxremote.rmi.port=${JMX_PORT}"
  fi
fi
log4j_opts="${KAFKA_LOG4J_OPTS:-}"
if [ -z "${log4j_opts}" ] && [ -f "${KAFKA_HOME_DIR}/config/tools-log4j2.yaml" ]; then
  log4j_opts="-Dlog4j2.configurationFile=${KAFKA_HOME_DIR}/config/tools-log4j2.yaml"
elif [ -z "${log4j_opts}" ]; then
  log4j_opts="-Dlog4j2.configurationFile=/etc/kafka/docker/tools-log4j2.yaml"
fi

class="$1"
shift
# The option strings are lists of JVM flags: word splitting is meant.
# shellcheck disable=SC2086
exec java ${heap_opts} ${performance_opts} ${KAFKA_GC_LOG_OPTS:-} ${jmx_opts} ${log4j_opts} \
  -Dkafka.logs.dir="${LOG_DIR:-${KAFKA_HOME_DIR}/logs}" -cp "${classpath}" ${KAFKA_OPTS:-} \
  "${class}" "$@"
