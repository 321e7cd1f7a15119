#!/usr/bin/env bash
# Local dev stack without Docker:
#   kafka     Apache Kafka (real broker, KRaft combined broker+controller nodes: one by default,
#             three with `up --brokers 3`)
#   redis-eu  standalone Redis        (region "eu")
#   redis-us  Redis Cluster of 3 masters + 3 replicas  (region "us")
#   postgres  PostgreSQL (Debian's packages), database "outbox" for the transactional outbox
# and with `up --mirrored` the mirrored topology besides (docs: deploy/local/README.md):
#   kafka-eu, kafka-us  one single-node KRaft cluster per region, each with a LINK listener
#   link      deploy/local/link_proxy.py: the delayed (and cuttable) link between the regions
#   mm2-eu, mm2-us      MirrorMaker 2, one process per target region, through the link
# and with `up --debezium` a Kafka Connect worker (standalone) with Debezium's PostgreSQL
# connector on its plugin path, for the outbox (the connector itself is created over its REST API:
# `outbox debezium-config`):
#   connect   Kafka Connect (the broker's version) + debezium-connector-postgres
# and `up --secure` its secure profile, a stack of its own beside this one (deploy/local/secure.sh):
# the same services over TLS, each client logged in as its own principal with ACLs.
#
# Usage: deploy/local/stack.sh up [--brokers N] [--kafka-only] [--mirrored] [--debezium]
#        |down [--mirrored|--debezium] [--purge]|status|logs [-f] [kafka|redis-eu|redis-us|postgres
#        |kafka-eu|kafka-us|mm2-eu|mm2-us|link|connect]|env [--mirrored] [--debezium]|libs
#        |up [--mirrored]|down [--mirrored] [--purge]|status|logs [-f] [service]|env [--mirrored] --secure
# `up` is idempotent and prints the `export ...` lines on stdout (progress goes to stderr), so
#   eval "$(deploy/local/stack.sh up)"
# works. See deploy/local/README.md.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/../.." && pwd)"

STACK_DIR="${STACK_DIR:-${REPO_ROOT}/.stack}"
[[ "${STACK_DIR}" == /* ]] || STACK_DIR="${PWD}/${STACK_DIR}"
KAFKA_VERSION="${KAFKA_VERSION:-4.1.0}"
KAFKA_PORT="${KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-19093}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"
KAFKA_BROKERS="${KAFKA_BROKERS:-}"   # empty: what the running stack has (run/kafka.brokers), else 1
REDIS_EU_PORT="${REDIS_EU_PORT:-16379}"
REDIS_US_PORT="${REDIS_US_PORT:-17001}"
POSTGRES_PORT="${POSTGRES_PORT:-15432}"
POSTGRES_BINDIR="${POSTGRES_BINDIR:-}"   # empty: found (pg_config --bindir, /usr/lib/postgresql/*/bin)
POSTGRES_OS_USER="${POSTGRES_OS_USER:-postgres}"   # runs the server when stack.sh runs as root
# Where PostgreSQL's data and log go, as root, when POSTGRES_OS_USER cannot enter STACK_DIR (see
# locate_postgres): a directory of this stack's own under this root-owned one.
POSTGRES_REACHABLE_ROOT="${POSTGRES_REACHABLE_ROOT:-/var/tmp/invalidator-stack-postgres}"
# The mirrored topology (up --mirrored). Each cluster's LINK listener is on its client port + 2,
# the link proxy's port in front of it on its client port + 3.
MIRROR_EU_KAFKA_PORT="${MIRROR_EU_KAFKA_PORT:-23092}"
MIRROR_EU_CONTROLLER_PORT="${MIRROR_EU_CONTROLLER_PORT:-23093}"
MIRROR_US_KAFKA_PORT="${MIRROR_US_KAFKA_PORT:-24092}"
MIRROR_US_CONTROLLER_PORT="${MIRROR_US_CONTROLLER_PORT:-24093}"
MIRROR_LINK_CONTROL_PORT="${MIRROR_LINK_CONTROL_PORT:-23099}"
MIRROR_LINK_DELAY_MS="${MIRROR_LINK_DELAY_MS:-40}"   # one way, each direction
MIRROR_LINK_JITTER_MS="${MIRROR_LINK_JITTER_MS:-0}"  # uniform +-, order kept per connection
MIRROR_MM2_HEAP_OPTS="${MIRROR_MM2_HEAP_OPTS:--Xms64m -Xmx256m}"
MIRROR_MM2_EXTRA_PROPERTIES="${MIRROR_MM2_EXTRA_PROPERTIES:-}"   # appended to each mm2-*.properties
# Kafka Connect with Debezium (up --debezium): its REST port, heap, the connector's version.
CONNECT_PORT="${CONNECT_PORT:-18083}"
CONNECT_HEAP_OPTS="${CONNECT_HEAP_OPTS:--Xms64m -Xmx256m}"
DEBEZIUM_VERSION="${DEBEZIUM_VERSION:-3.6.1.Final}"

KAFKA_START_TIMEOUT=90   # seconds until the broker must answer
COORDINATOR_TIMEOUT=90   # seconds until a consumer group coordinator must answer
KAFKA_STOP_TIMEOUT=60    # seconds between SIGTERM and SIGKILL
# A cluster stopping as a whole: the last controller standing waits for a quorum that is gone
# (its broker part has shut down cleanly by then), so it gets less time before SIGKILL.
KAFKA_CLUSTER_STOP_TIMEOUT=15
REDIS_TIMEOUT=20         # seconds for PING / cluster_state:ok
POSTGRES_TIMEOUT=30      # seconds until PostgreSQL accepts connections
POSTGRES_STOP_TIMEOUT=30 # seconds for a fast shutdown before SIGKILL
LINK_START_TIMEOUT=20    # seconds until the link proxy answers on its control port
# Seconds until MirrorMaker has created every mirrored topic and runs (a cold start on a 2-core
# host under a load of 40 took over 150).
MIRROR_TIMEOUT="${MIRROR_START_TIMEOUT:-300}"
[[ "${MIRROR_TIMEOUT}" =~ ^[1-9][0-9]*$ ]] || { echo "stack.sh: error: MIRROR_START_TIMEOUT must be a number of seconds, got '${MIRROR_TIMEOUT}'" >&2; exit 2; }
MM2_STOP_TIMEOUT=20      # seconds between SIGTERM and SIGKILL (MM2 can hang in its exit)
# Seconds until the Connect worker answers on its REST port with the Debezium connector loaded
# (12 s cold, 22 s with tests running, on a 2-core host).
CONNECT_TIMEOUT="${CONNECT_START_TIMEOUT:-120}"
[[ "${CONNECT_TIMEOUT}" =~ ^[1-9][0-9]*$ ]] || { echo "stack.sh: error: CONNECT_START_TIMEOUT must be a number of seconds, got '${CONNECT_TIMEOUT}'" >&2; exit 2; }
CONNECT_STOP_TIMEOUT=20  # seconds between SIGTERM and SIGKILL

KAFKA_LIBS_DIR="${KAFKA_LIBS_DIR:-${STACK_DIR}/kafka-libs}"
LIBS_DIR="${KAFKA_LIBS_DIR}/${KAFKA_VERSION}"
KAFKA_DIR="${STACK_DIR}/kafka"
KAFKA_ADMIN_CONFIG="${KAFKA_DIR}/admin.properties"
REDIS_DIR="${STACK_DIR}/redis"
POSTGRES_DIR="${STACK_DIR}/postgres"
POSTGRES_DATA="${POSTGRES_DIR}/data"
POSTGRES_DATABASE=outbox
LOG_DIR="${STACK_DIR}/logs"
RUN_DIR="${STACK_DIR}/run"
KAFKA_TOOLS_LOG="${LOG_DIR}/kafka-tools.log"
MAVEN_LOG="${LOG_DIR}/maven.log"
KAFKA_BROKERS_FILE="${RUN_DIR}/kafka.brokers"
TOPICS_FILE="${SCRIPT_DIR}/topics.txt"
LOG4J_CONFIG="${SCRIPT_DIR}/log4j2.yaml"
POM="${SCRIPT_DIR}/pom.xml"
MIRROR_POM="${SCRIPT_DIR}/pom-mirror.xml"
MIRROR_LIBS_DIR="${KAFKA_LIBS_DIR}/${KAFKA_VERSION}-mirror"
MIRROR_DIR="${STACK_DIR}/mirrored"
MIRROR_MARKER="${RUN_DIR}/mirrored"   # written by up --mirrored: status and logs include them
LINK_PROXY="${SCRIPT_DIR}/link_proxy.py"
MIRROR_REGIONS=(eu us)
# Kafka Connect + Debezium (up --debezium): the plugin directory (one subdirectory per plugin),
# the worker's files, and the marker that status and logs look for.
DEBEZIUM_POM="${SCRIPT_DIR}/pom-debezium.xml"
DEBEZIUM_PLUGINS_DIR="${KAFKA_LIBS_DIR}/debezium-${DEBEZIUM_VERSION}"
DEBEZIUM_LIBS_DIR="${DEBEZIUM_PLUGINS_DIR}/debezium-connector-postgres"
CONNECT_DIR="${STACK_DIR}/connect"
CONNECT_CONFIG="${CONNECT_DIR}/worker.properties"
CONNECT_OFFSETS="${CONNECT_DIR}/offsets"
CONNECT_PID_FILE="${RUN_DIR}/connect.pid"
CONNECT_LOG="${LOG_DIR}/connect.log"
CONNECT_MARKER="${RUN_DIR}/debezium"
# The cluster up/down/status act on: the single-cluster stack's unless in_cluster says otherwise.
KAFKA_NAME=kafka
KAFKA_LINK_PORT=""            # a second listener LINK (mirrored clusters only)...
KAFKA_LINK_ADVERTISED_PORT="" # ...advertised as the link proxy's port in front of it
KAFKA_CONFIG_WRITER=write_kafka_config        # how a node's server.properties is written...
KAFKA_STORAGE_FORMATTER=format_kafka_storage  # ...and its storage formatted (secure.sh: SASL_SSL)
REDIS_CONFIG_WRITER=write_redis_config        # a Redis node's redis.conf (secure.sh: TLS, ACLs)
MIRROR_CLUSTER=in_cluster                     # runs a kafka function on a region's mirrored cluster...
MM2_CONFIG_WRITER=write_mm2_config            # ...and writes its MirrorMaker's properties (secure.sh)
MIRROR_LOGS=(kafka-eu kafka-us link mm2-eu mm2-us)   # the mirrored topology's logs (`logs`)

for _port_var in KAFKA_PORT KAFKA_CONTROLLER_PORT REDIS_EU_PORT REDIS_US_PORT POSTGRES_PORT \
    MIRROR_EU_KAFKA_PORT MIRROR_EU_CONTROLLER_PORT MIRROR_US_KAFKA_PORT MIRROR_US_CONTROLLER_PORT \
    MIRROR_LINK_CONTROL_PORT CONNECT_PORT; do
  [[ "${!_port_var}" =~ ^[0-9]+$ ]] || { echo "stack.sh: error: ${_port_var} must be a port number, got '${!_port_var}'" >&2; exit 2; }
done
for _ms_var in MIRROR_LINK_DELAY_MS MIRROR_LINK_JITTER_MS; do
  [[ "${!_ms_var}" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "stack.sh: error: ${_ms_var} must be a number of milliseconds >= 0, got '${!_ms_var}'" >&2; exit 2; }
done
# The us cluster: 3 masters and one replica each, on REDIS_US_PORT and the next five ports.
US_NODES=6
US_REPLICAS_PER_MASTER=1
US_PORTS=()
for (( _i = 0; _i < US_NODES; _i++ )); do US_PORTS+=("$((REDIS_US_PORT + _i))"); done
# Redis Cluster nodes also listen on their client port + 10000 (the cluster bus).
US_BUS_PORTS=()
for _port in "${US_PORTS[@]}"; do US_BUS_PORTS+=("$((_port + 10000))"); done
US_LAST_PORT="${US_PORTS[$((US_NODES - 1))]}"
check_port_plan() {
  local name port seen=" " bus
  for name in KAFKA_PORT KAFKA_CONTROLLER_PORT REDIS_EU_PORT POSTGRES_PORT; do
    port="${!name}"
    [[ "${seen}" != *" ${port} "* ]] || { echo "stack.sh: error: ${name}=${port} is used twice" >&2; exit 2; }
    seen+="${port} "
  done
  for port in "${US_PORTS[@]}"; do
    [[ "${seen}" != *" ${port} "* ]] \
      || { echo "stack.sh: error: REDIS_US_PORT=${REDIS_US_PORT} uses ports ${US_PORTS[*]}, and ${port} is also another service's port" >&2; exit 2; }
    seen+="${port} "
  done
  for bus in "${US_BUS_PORTS[@]}"; do
    (( bus <= 65535 )) \
      || { echo "stack.sh: error: REDIS_US_PORT=${REDIS_US_PORT}: the cluster bus ports (client port + 10000) must be <= 65535" >&2; exit 2; }
    [[ "${seen}" != *" ${bus} "* ]] \
      || { echo "stack.sh: error: REDIS_US_PORT=${REDIS_US_PORT}: the cluster bus port ${bus} (client port + 10000) is also another service's port; choose ports 10000 apart" >&2; exit 2; }
  done
}
check_port_plan
# The secure profile (up/down/status/logs/env --secure): its variables and functions.
# shellcheck source=deploy/local/secure.sh
source "${SCRIPT_DIR}/secure.sh"

# The mirrored topology's ports: each region's client, controller, LINK (client + 2) and link
# proxy (client + 3) ports and the link's control port, apart from each other and from the
# single-cluster stack's (checked by up/down/env --mirrored only, so a second single-cluster stack
# may use them).
mirror_port() {  # <eu|us> <client|controller|link|proxy>
  local client controller
  case "$1" in
    eu) client="${MIRROR_EU_KAFKA_PORT}"; controller="${MIRROR_EU_CONTROLLER_PORT}" ;;
    us) client="${MIRROR_US_KAFKA_PORT}"; controller="${MIRROR_US_CONTROLLER_PORT}" ;;
    *) die "no region '$1' in the mirrored topology" ;;
  esac
  case "$2" in
    client) echo "${client}" ;;
    controller) echo "${controller}" ;;
    link) echo "$(( client + 2 ))" ;;
    proxy) echo "$(( client + 3 ))" ;;
  esac
}
check_mirror_port_plan() {
  local seen=" " port name region kind what
  for port in "${KAFKA_PORT}" "${KAFKA_CONTROLLER_PORT}" "${REDIS_EU_PORT}" "${POSTGRES_PORT}" \
      "${US_PORTS[@]}" "${US_BUS_PORTS[@]}"; do
    seen+="${port} "
  done
  for region in "${MIRROR_REGIONS[@]}"; do
    for kind in client controller link proxy; do
      port="$(mirror_port "${region}" "${kind}")"
      name="MIRROR_${region^^}_KAFKA_PORT"
      [[ "${kind}" != controller ]] || name="MIRROR_${region^^}_CONTROLLER_PORT"
      what="${name}=${!name}"
      [[ "${kind}" != link ]] || what="${name}=${!name}: its LINK port ${port} (client port + 2)"
      [[ "${kind}" != proxy ]] || what="${name}=${!name}: its link proxy port ${port} (client port + 3)"
      (( port >= 1 && port <= 65535 )) || { echo "stack.sh: error: ${what} is not a port" >&2; exit 2; }
      [[ "${seen}" != *" ${port} "* ]] \
        || { echo "stack.sh: error: ${what} is also another service's port" >&2; exit 2; }
      seen+="${port} "
    done
  done
  [[ "${seen}" != *" ${MIRROR_LINK_CONTROL_PORT} "* ]] \
    || { echo "stack.sh: error: MIRROR_LINK_CONTROL_PORT=${MIRROR_LINK_CONTROL_PORT} is also another service's port" >&2; exit 2; }
}

# The Connect worker's REST port, apart from the single-cluster stack's ports (checked by
# up/env --debezium only).
check_connect_port_plan() {
  local port
  (( CONNECT_PORT >= 1 && CONNECT_PORT <= 65535 )) || { echo "stack.sh: error: CONNECT_PORT=${CONNECT_PORT} is not a port" >&2; exit 2; }
  for port in "${KAFKA_PORT}" "${KAFKA_CONTROLLER_PORT}" "${REDIS_EU_PORT}" "${POSTGRES_PORT}" \
      "${US_PORTS[@]}" "${US_BUS_PORTS[@]}"; do
    [[ "${port}" != "${CONNECT_PORT}" ]] \
      || { echo "stack.sh: error: CONNECT_PORT=${CONNECT_PORT} is also another service's port" >&2; exit 2; }
  done
}

# Short-lived CLI JVMs: start fast, stay small.
TOOLS_JAVA_OPTS=(-Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto
  -Djava.awt.headless=true)

# ---------------------------------------------------------------------------- helpers

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf 'stack.sh: error: %s\n' "$*" >&2; exit 1; }

usage() {
  cat >&2 <<EOF
usage: $(basename "$0") <command>
  up [--brokers N] [--kafka-only]
                     start whatever is not running yet, create topics, wait for a group
                     coordinator, print env. --brokers 3: a 3-node KRaft cluster (each node
                     broker+controller; replication factor 3 for every topic, __consumer_offsets
                     and transaction state included; min.insync.replicas=2); data under
                     \$STACK_DIR/kafka-3/. --kafka-only: no Redis, no PostgreSQL (env then
                     names their ports all the same). --mirrored: also the mirrored topology
                     (kafka-eu, kafka-us, the link proxy, mm2-eu, mm2-us; under
                     \$STACK_DIR/mirrored/) and the MIRROR_* export lines. --debezium: also a
                     Kafka Connect worker (standalone, REST on CONNECT_PORT) with Debezium's
                     PostgreSQL connector installed, no connector created (see \`outbox
                     debezium-config\`), and the DEBEZIUM_CONNECT_URL export line
  down [--mirrored|--debezium] [--purge]   stop everything (--mirrored: the mirrored topology
                     only; --debezium: the Connect worker only; --purge also deletes data and
                     logs, keeps the jar cache)
  status             one line per service; exit 0 only if all answer
  logs [-f] [kafka|redis-eu|redis-us|postgres|kafka-eu|kafka-us|mm2-eu|mm2-us|link|connect]
                     tail the logs (-f: follow)
  env [--mirrored] [--debezium]   print the export lines for the Python settings and the outbox
                     database
  libs               fetch the Kafka, MirrorMaker and Debezium jars into the cache (once) and
                     print the Kafka jars' directory
  up|down [--purge]|status|logs [-f] [service]|env  --secure
                     the same on the secure profile (under \$STACK_DIR/secure, ports of its own):
                     Kafka SASL_SSL (SCRAM-SHA-512, ACLs), Redis eu and the us Cluster over TLS
                     with ACL users, PostgreSQL TLS-only with a password user; a local CA and the
                     passwords made at the first up; env --secure prints every client's settings.
                     With --mirrored (up, env, down): its mirrored topology, a second SASL_SSL
                     cluster kafka-us (the profile's kafka is eu's) and mm2-eu, mm2-us logged in
                     as principal mirror; env also prints MIRROR_KAFKA_EU, MIRROR_KAFKA_US
ports (environment): KAFKA_PORT (19092), KAFKA_CONTROLLER_PORT (19093): node n of N (n = 1..N)
  listens on KAFKA_PORT + 2(n-1) and KAFKA_CONTROLLER_PORT + 2(n-1); REDIS_EU_PORT (16379),
  REDIS_US_PORT (17001: the cluster of 3 masters + 3 replicas uses it and the next five, and
  each node also listens on its port + 10000 for the cluster bus, so 27001-27006 too; a second
  stack must avoid all of them), POSTGRES_PORT (15432); mirrored: MIRROR_EU_KAFKA_PORT (23092),
  MIRROR_EU_CONTROLLER_PORT (23093), MIRROR_US_KAFKA_PORT (24092), MIRROR_US_CONTROLLER_PORT
  (24093), each cluster's LINK listener on its client port + 2 and the link proxy in front of it
  on + 3; MIRROR_LINK_CONTROL_PORT (23099); MIRROR_LINK_DELAY_MS (40), MIRROR_LINK_JITTER_MS (0);
  MIRROR_MM2_EXTRA_PROPERTIES: lines appended to MirrorMaker's properties (on its next start);
  debezium: CONNECT_PORT (18083), CONNECT_HEAP_OPTS (-Xms64m -Xmx256m), CONNECT_START_TIMEOUT (120)
  secure: SECURE_KAFKA_PORT (19192), SECURE_KAFKA_CONTROLLER_PORT (19193), SECURE_REDIS_EU_PORT
  (16479), SECURE_REDIS_US_PORT (17101: it, the next five and each + 10000), SECURE_POSTGRES_PORT
  (15532), SECURE_KAFKA_HEAP_OPTS (-Xms128m -Xmx512m), SECURE_MIRROR_US_KAFKA_PORT (19292),
  SECURE_MIRROR_US_CONTROLLER_PORT (19293)
EOF
}

now() { date +%s; }

# Alive = exists and is not a zombie (daemonised Redis/Kafka are reparented to PID 1, which
# may reap them late; kill -0 alone would report an exited process as running).
pid_alive() {
  local state
  [[ -n "${1:-}" ]] || return 1
  state="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
  [[ -n "${state}" && "${state}" != Z* ]]
}

read_pid() { if [[ -s "$1" ]]; then tr -dc '0-9' <"$1"; fi; }

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# RCLI_OPTIONS: more redis-cli options, RCLI_AUTH: the password of the user they log in as (the
# secure profile's TLS and admin login, bound as locals by in_secure). The password reaches
# redis-cli alone, in REDISCLI_AUTH: never on a command line, nor in another process's environment.
RCLI_OPTIONS=()
RCLI_AUTH=""
with_rcli_auth() { if [[ -n "${RCLI_AUTH}" ]]; then REDISCLI_AUTH="${RCLI_AUTH}" "$@"; else "$@"; fi; }
rcli() { local port="$1"; shift; with_rcli_auth timeout 5 redis-cli -h 127.0.0.1 -p "${port}" "${RCLI_OPTIONS[@]}" "$@" 2>/dev/null; }

redis_ping() { [[ "$(rcli "$1" ping)" == "PONG" ]]; }

# PostgreSQL's directory is made by prepare_postgres_dirs (it may lie outside STACK_DIR).
ensure_dirs() { mkdir -p "${LOG_DIR}" "${RUN_DIR}" "${KAFKA_DIR}" "${REDIS_DIR}"; }

# Serialise up/down so two concurrent invocations cannot start two stacks.
take_lock() {
  ensure_dirs
  exec 9>"${RUN_DIR}/stack.lock"
  flock -w 180 9 || die "another stack.sh up/down holds ${RUN_DIR}/stack.lock"
}

print_env() {
  printf "export INVALIDATOR_KAFKA__BOOTSTRAP_SERVERS=%s\n" "$(kafka_bootstrap)"
  printf "export INVALIDATOR_REGIONS='%s'\n" \
    "{\"eu\":[{\"name\":\"eu-standalone\",\"url\":\"redis://127.0.0.1:${REDIS_EU_PORT}/0\",\"cluster\":false}],\"us\":[{\"name\":\"us-cluster\",\"url\":\"redis://127.0.0.1:${REDIS_US_PORT}\",\"cluster\":true,\"min_replicas_acked\":1,\"replicas_timeout_ms\":1000}]}"
  printf "export OUTBOX_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:%s/%s\n" \
    "${POSTGRES_PORT}" "${POSTGRES_DATABASE}"
}

print_mirror_env() {
  printf 'export MIRROR_KAFKA_EU=127.0.0.1:%s\n' "$(mirror_port eu client)"
  printf 'export MIRROR_KAFKA_US=127.0.0.1:%s\n' "$(mirror_port us client)"
  printf 'export MIRROR_LINK_CONTROL=127.0.0.1:%s\n' "${MIRROR_LINK_CONTROL_PORT}"
}

# ---------------------------------------------------------------------------- kafka

require_java() {
  command -v java >/dev/null || die "java not found (Kafka ${KAFKA_VERSION} needs a JDK 17+ on PATH)"
}

kafka_libs_present() {
  [[ -f "${LIBS_DIR}/kafka_2.13-${KAFKA_VERSION}.jar" \
    && -f "${LIBS_DIR}/kafka-tools-${KAFKA_VERSION}.jar" ]] \
    && compgen -G "${LIBS_DIR}/log4j-slf4j-impl-*.jar" >/dev/null
}

mirror_libs_present() {
  [[ -f "${MIRROR_LIBS_DIR}/connect-mirror-${KAFKA_VERSION}.jar" \
    && -f "${MIRROR_LIBS_DIR}/connect-runtime-${KAFKA_VERSION}.jar" ]]
}

# resolve_jars <what> <pom> <dir> <present-check> [version]: copy the pom's runtime dependencies
# into dir (through a temporary directory, so a failed run leaves no half cache); version (the
# Kafka version by default) only names them in messages.
resolve_jars() {
  local what="$1" pom="$2" dir="$3" present="$4" version="${5:-${KAFKA_VERSION}}" maven_log
  "${present}" && return 0
  maven_log="${MAVEN_LOG}"
  [[ "${pom}" == "${POM}" ]] || maven_log="${LOG_DIR}/maven-$(basename "${pom}" .xml).log"
  command -v mvn >/dev/null || die "mvn not found: needed once to fetch the ${what} ${version} jars"
  log "resolving ${what} ${version} jars with Maven into ${dir} (one-time)"
  local tmp="${dir}.tmp.$$"
  rm -rf "${tmp}"
  # The Maven logs are the stack's, also when a profile's own LOG_DIR is bound (up --secure).
  mkdir -p "$(dirname "${dir}")" "$(dirname "${maven_log}")"
  if ! mvn -B -q -f "${pom}" dependency:copy-dependencies \
      -Dkafka.version="${KAFKA_VERSION}" -Ddebezium.version="${DEBEZIUM_VERSION}" \
      -DoutputDirectory="${tmp}" >"${maven_log}" 2>&1; then
    rm -rf "${tmp}"
    die "Maven could not resolve ${what} ${version} jars; see ${maven_log}"
  fi
  rm -rf "${dir}"
  mv "${tmp}" "${dir}"
  "${present}" || die "${what} jars missing in ${dir} after Maven run; see ${maven_log}"
}

ensure_kafka_libs() { resolve_jars Kafka "${POM}" "${LIBS_DIR}" kafka_libs_present; }
# MirrorMaker 2 (connect-mirror): run on the broker's jars plus these (they bring no slf4j binding).
ensure_mirror_libs() { resolve_jars MirrorMaker "${MIRROR_POM}" "${MIRROR_LIBS_DIR}" mirror_libs_present; }
# Debezium's PostgreSQL connector: a plugin directory of its own for the Connect worker, which
# runs on the broker's and MirrorMaker's jars (connect-runtime, connect-json, connect-transforms).
debezium_libs_present() {
  [[ -f "${DEBEZIUM_LIBS_DIR}/debezium-connector-postgres-${DEBEZIUM_VERSION}.jar" ]] \
    && compgen -G "${DEBEZIUM_LIBS_DIR}/postgresql-*.jar" >/dev/null
}
ensure_debezium_libs() {
  resolve_jars Debezium "${DEBEZIUM_POM}" "${DEBEZIUM_LIBS_DIR}" debezium_libs_present "${DEBEZIUM_VERSION}"
}

# Run a Kafka CLI class (StorageTool, TopicCommand); its log4j output goes to kafka-tools.log.
kafka_tool() {
  java "${TOOLS_JAVA_OPTS[@]}" \
    -Dlog4j2.configurationFile="${LOG4J_CONFIG}" \
    -Dkafka.log.file="${KAFKA_TOOLS_LOG}" -Dkafka.log.level=WARN \
    -cp "${LIBS_DIR}/*" "$@"
}

# How many Kafka nodes: --brokers / KAFKA_BROKERS, else what the stack was started with, else 1.
resolve_brokers() {
  if [[ -z "${KAFKA_BROKERS}" ]]; then
    KAFKA_BROKERS="$(read_pid "${KAFKA_BROKERS_FILE}")"
    KAFKA_BROKERS="${KAFKA_BROKERS:-1}"
  fi
  [[ "${KAFKA_BROKERS}" =~ ^[1-9]$ ]] || die "--brokers / KAFKA_BROKERS must be 1-9, got '${KAFKA_BROKERS}'"
}

# Node n's ports, files and directories. One node keeps the paths of a single-broker stack.
kafka_nodes() { seq 1 "${KAFKA_BROKERS}"; }
kafka_node_port() { printf '%s\n' "$(( KAFKA_PORT + 2 * ($1 - 1) ))"; }
kafka_node_controller_port() { printf '%s\n' "$(( KAFKA_CONTROLLER_PORT + 2 * ($1 - 1) ))"; }
kafka_node_dir() {
  if (( KAFKA_BROKERS == 1 )); then printf '%s\n' "${KAFKA_DIR}"
  else printf '%s/kafka-%s/node-%s\n' "${STACK_DIR}" "${KAFKA_BROKERS}" "$1"; fi
}
kafka_node_config() { printf '%s/server.properties\n' "$(kafka_node_dir "$1")"; }
kafka_node_data() { printf '%s/data\n' "$(kafka_node_dir "$1")"; }
kafka_node_pid_file() {
  if (( KAFKA_BROKERS == 1 )); then printf '%s/%s.pid\n' "${RUN_DIR}" "${KAFKA_NAME}"
  else printf '%s/%s-%s.pid\n' "${RUN_DIR}" "${KAFKA_NAME}" "$1"; fi
}
kafka_node_log() {
  if (( KAFKA_BROKERS == 1 )); then printf '%s/%s.log\n' "${LOG_DIR}" "${KAFKA_NAME}"
  else printf '%s/%s-%s.log\n' "${LOG_DIR}" "${KAFKA_NAME}" "$1"; fi
}
kafka_bootstrap() {
  local node servers=()
  for node in $(kafka_nodes); do servers+=("127.0.0.1:$(kafka_node_port "${node}")"); done
  (IFS=,; printf '%s\n' "${servers[*]}")
}
# Replication of every topic: 3 copies (2 in sync to accept a write) once there are 3 nodes.
kafka_replication() { if (( KAFKA_BROKERS >= 3 )); then echo 3; else echo 1; fi; }
kafka_min_isr() { if (( KAFKA_BROKERS >= 3 )); then echo 2; else echo 1; fi; }

topics_cmd() {
  kafka_tool org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "$(kafka_bootstrap)" --command-config "${KAFKA_ADMIN_CONFIG}" "$@"
}

write_kafka_config() {
  local node="$1" voters=() other rf isr
  for other in $(kafka_nodes); do
    voters+=("${other}@127.0.0.1:$(kafka_node_controller_port "${other}")")
  done
  rf="$(kafka_replication)"
  isr="$(kafka_min_isr)"
  mkdir -p "$(kafka_node_dir "${node}")"
  # A mirrored cluster's LINK listener advertises the link proxy's port: a client that
  # bootstraps through the proxy is sent on through it (single-node clusters only).
  local link_listener="" link_advertised="" link_map=""
  if [[ -n "${KAFKA_LINK_PORT}" ]]; then
    link_listener=",LINK://127.0.0.1:${KAFKA_LINK_PORT}"
    link_advertised=",LINK://127.0.0.1:${KAFKA_LINK_ADVERTISED_PORT}"
    link_map=",LINK:PLAINTEXT"
  fi
  cat >"$(kafka_node_config "${node}")" <<EOF
# Generated by deploy/local/stack.sh; rewritten on every start.
process.roles=broker,controller
node.id=${node}
controller.quorum.voters=$(IFS=,; echo "${voters[*]}")
listeners=PLAINTEXT://127.0.0.1:$(kafka_node_port "${node}"),CONTROLLER://127.0.0.1:$(kafka_node_controller_port "${node}")${link_listener}
advertised.listeners=PLAINTEXT://127.0.0.1:$(kafka_node_port "${node}")${link_advertised}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT${link_map}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$(kafka_node_data "${node}")
num.partitions=6
auto.create.topics.enable=false
default.replication.factor=${rf}
min.insync.replicas=${isr}
offsets.topic.replication.factor=${rf}
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=${rf}
transaction.state.log.min.isr=${isr}
share.coordinator.state.topic.replication.factor=${rf}
share.coordinator.state.topic.min.isr=${isr}
group.initial.rebalance.delay.ms=0
EOF
  # Client settings for the CLI tools: fail fast instead of retrying for a minute.
  cat >"${KAFKA_ADMIN_CONFIG}" <<EOF
request.timeout.ms=5000
default.api.timeout.ms=10000
EOF
}

kafka_pid() {
  local pid
  pid="$(read_pid "$(kafka_node_pid_file "$1")")"
  # Guard against pid reuse: the process must be our broker.
  if pid_alive "${pid}" && [[ "$(ps -ww -o args= -p "${pid}" 2>/dev/null)" == *"$(kafka_node_config "$1")"* ]]; then
    printf '%s\n' "${pid}"
  fi
}

# Every node of a cluster is formatted with the same cluster id (kept beside the node dirs).
format_kafka_storage() {
  local node="$1" cluster_id id_file
  [[ -f "$(kafka_node_data "${node}")/meta.properties" ]] && return 0
  id_file="${STACK_DIR}/kafka-${KAFKA_BROKERS}/cluster.id"
  if (( KAFKA_BROKERS > 1 )) && [[ -s "${id_file}" ]]; then
    cluster_id="$(<"${id_file}")"
  else
    cluster_id="$(kafka_tool kafka.tools.StorageTool random-uuid 2>>"${KAFKA_TOOLS_LOG}")" \
      || die "Kafka StorageTool random-uuid failed; see ${KAFKA_TOOLS_LOG}"
    if (( KAFKA_BROKERS > 1 )); then printf '%s\n' "${cluster_id}" >"${id_file}"; fi
  fi
  log "formatting ${KAFKA_NAME} storage of node ${node} (cluster id ${cluster_id})"
  mkdir -p "$(kafka_node_data "${node}")"
  kafka_tool kafka.tools.StorageTool format -t "${cluster_id}" -c "$(kafka_node_config "${node}")" \
    >>"${KAFKA_TOOLS_LOG}" 2>&1 \
    || die "Kafka storage format failed; see ${KAFKA_TOOLS_LOG}"
}

start_kafka_node() {
  local node="$1" pid port log_file pid_file
  log_file="$(kafka_node_log "${node}")"
  pid_file="$(kafka_node_pid_file "${node}")"
  pid="$(kafka_pid "${node}")"
  if [[ -n "${pid}" ]]; then
    log "${KAFKA_NAME} node ${node} already running (pid ${pid})"
    return 0
  fi
  rm -f "${pid_file}"
  for port in "$(kafka_node_port "${node}")" "$(kafka_node_controller_port "${node}")" ${KAFKA_LINK_PORT}; do
    port_open "${port}" && die "${KAFKA_NAME}: port ${port} is already in use by another process (set its port variables)"
  done
  "${KAFKA_CONFIG_WRITER}" "${node}"
  "${KAFKA_STORAGE_FORMATTER}" "${node}"
  log "starting ${KAFKA_NAME} ${KAFKA_VERSION} node ${node} on 127.0.0.1:$(kafka_node_port "${node}") (log: ${log_file})"
  printf '===== %s stack.sh: starting %s %s =====\n' "$(date '+%F %T')" "${KAFKA_NAME}" "${KAFKA_VERSION}" >>"${log_file}"
  # shellcheck disable=SC2086  # KAFKA_HEAP_OPTS is a list of JVM flags
  nohup java ${KAFKA_HEAP_OPTS} -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
    -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="${LOG4J_CONFIG}" \
    -Dkafka.log.file="${log_file}" -Dkafka.log.level=INFO -Dkafka.logs.dir="${LOG_DIR}" \
    -cp "${LIBS_DIR}/*" kafka.Kafka "$(kafka_node_config "${node}")" \
    </dev/null >>"${log_file}" 2>&1 9>&- &
  echo $! >"${pid_file}"
}

start_kafka() {
  local node running
  running="$(read_pid "${KAFKA_BROKERS_FILE}")"
  if [[ -n "${running}" && "${running}" != "${KAFKA_BROKERS}" ]]; then
    for node in $(KAFKA_BROKERS="${running}"; kafka_nodes); do
      [[ -z "$(KAFKA_BROKERS="${running}"; kafka_pid "${node}")" ]] \
        || die "${KAFKA_NAME} runs ${running} node(s) here; stop it (down) before starting ${KAFKA_BROKERS}"
    done
  fi
  require_java
  ensure_kafka_libs
  for node in $(kafka_nodes); do start_kafka_node "${node}"; done
  echo "${KAFKA_BROKERS}" >"${KAFKA_BROKERS_FILE}"
}

# Brokers that answer a metadata request (one "(id: n ...)" line each).
kafka_brokers_answering() {
  kafka_tool org.apache.kafka.tools.BrokerApiVersionsCommand \
    --bootstrap-server "$(kafka_bootstrap)" --command-config "${KAFKA_ADMIN_CONFIG}" \
    2>>"${KAFKA_TOOLS_LOG}" | grep -c '(id: ' || true
}

# Wait until every node answers; leaves the topic list in KAFKA_TOPICS.
KAFKA_TOPICS=""
wait_kafka() {
  local deadline=$(( $(now) + KAFKA_START_TIMEOUT )) node
  while :; do
    for node in $(kafka_nodes); do
      pid_alive "$(read_pid "$(kafka_node_pid_file "${node}")")" \
        || die "${KAFKA_NAME} node ${node} exited during startup; see $(kafka_node_log "${node}")"
    done
    if port_open "${KAFKA_PORT}" && KAFKA_TOPICS="$(topics_cmd --list 2>>"${KAFKA_TOOLS_LOG}")" \
        && { (( KAFKA_BROKERS == 1 )) || (( $(kafka_brokers_answering) == KAFKA_BROKERS )); }; then
      return 0
    fi
    (( $(now) < deadline )) || die "${KAFKA_NAME} (${KAFKA_BROKERS} node(s)) did not answer on $(kafka_bootstrap) within ${KAFKA_START_TIMEOUT}s; see ${LOG_DIR}/${KAFKA_NAME}*.log"
    sleep 0.5
  done
}

# "name partitions" pairs from topics.txt (comments and blank lines dropped).
read_topics() {
  sed -e 's/#.*//' "${TOPICS_FILE}" | awk 'NF >= 2 { print $1, $2 }'
}

# A broker just started may time out a creation on a loaded host (the admin client fails fast):
# what failed is tried again, up to TOPIC_CREATE_ATTEMPTS times.
TOPIC_CREATE_ATTEMPTS=3
ensure_topics() {
  local name parts pids names i failed=() attempt created=0
  for (( attempt = 1; attempt <= TOPIC_CREATE_ATTEMPTS; attempt++ )); do
    pids=()
    names=()
    failed=()
    while read -r name parts; do
      grep -qxF "${name}" <<<"${KAFKA_TOPICS}" && continue
      log "creating topic ${name} on ${KAFKA_NAME} (${parts} partitions, replication factor $(kafka_replication))"
      topics_cmd --create --if-not-exists --topic "${name}" --partitions "${parts}" \
        --replication-factor "$(kafka_replication)" >>"${KAFKA_TOOLS_LOG}" 2>&1 &
      pids+=("$!")
      names+=("${name}")
    done < <(read_topics)
    # One JVM per topic (TopicCommand takes a single topic), run in parallel.
    for i in "${!pids[@]}"; do
      wait "${pids[$i]}" || failed+=("${names[$i]}")
    done
    created+=${#pids[@]}
    (( ${#failed[@]} )) || break
    (( attempt < TOPIC_CREATE_ATTEMPTS )) || break
    log "creating topic(s) ${failed[*]} on ${KAFKA_NAME} failed (attempt ${attempt} of ${TOPIC_CREATE_ATTEMPTS}); trying again"
    sleep 2
    KAFKA_TOPICS="$(topics_cmd --list 2>>"${KAFKA_TOOLS_LOG}")" || KAFKA_TOPICS=""
  done
  (( ${#failed[@]} == 0 )) || die "creating topic(s) ${failed[*]} on ${KAFKA_NAME} failed; see ${KAFKA_TOOLS_LOG}"
  if (( created == 0 )); then log "${KAFKA_NAME}: topics present"; fi
}

# A fresh broker creates __consumer_offsets on the first group request and answers
# COORDINATOR_NOT_AVAILABLE until its partitions are led and loaded: clients that talk to a
# group in that window fail. Ask for a group that never exists until its coordinator says
# "not found" (the tool exits 0 either way, so its output is what tells).
wait_group_coordinator() {
  local deadline=$(( $(now) + COORDINATOR_TIMEOUT )) out
  while :; do
    out="$(kafka_tool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand \
      --bootstrap-server "$(kafka_bootstrap)" --command-config "${KAFKA_ADMIN_CONFIG}" \
      --describe --group stack.sh-coordinator-probe 2>&1)" || true
    if grep -qE 'GroupIdNotFoundException|does not exist' <<<"${out}"; then
      return 0
    fi
    printf '%s\n' "${out}" >>"${KAFKA_TOOLS_LOG}"
    (( $(now) < deadline )) \
      || die "no consumer group coordinator answered within ${COORDINATOR_TIMEOUT}s; see ${KAFKA_TOOLS_LOG} and ${LOG_DIR}/kafka*.log"
    log "waiting for a group coordinator (__consumer_offsets)"
    sleep 1
  done
}

# SIGTERM to every node at once (a cluster shuts down in parallel), SIGKILL after the timeout.
stop_kafka() {
  local node pid pids=() deadline timeout="${KAFKA_STOP_TIMEOUT}"
  (( KAFKA_BROKERS == 1 )) || timeout="${KAFKA_CLUSTER_STOP_TIMEOUT}"
  for node in $(kafka_nodes); do
    pid="$(kafka_pid "${node}")"
    if [[ -n "${pid}" ]]; then
      log "stopping ${KAFKA_NAME} node ${node} (pid ${pid})"
      kill -TERM "${pid}" 2>/dev/null || true
      pids+=("${pid}")
    fi
  done
  deadline=$(( $(now) + timeout ))
  for pid in "${pids[@]}"; do
    while pid_alive "${pid}" && (( $(now) < deadline )); do sleep 0.2; done
    if pid_alive "${pid}"; then
      log "${KAFKA_NAME} pid ${pid} did not stop within ${timeout}s, sending SIGKILL (see ${LOG_DIR}/${KAFKA_NAME}*.log)"
      kill -KILL "${pid}" 2>/dev/null || true
      while pid_alive "${pid}"; do sleep 0.1; done
    fi
  done
  for node in $(kafka_nodes); do rm -f "$(kafka_node_pid_file "${node}")"; done
  rm -f "${KAFKA_BROKERS_FILE}"
}

# ---------------------------------------------------------------------------- redis

require_redis() {
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    if [[ "$(id -u)" != "0" ]] || ! command -v apt-get >/dev/null; then
      die "redis-server/redis-cli not found; install the redis-server package"
    fi
    log "installing redis-server with apt-get"
    { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server; } \
      >"${LOG_DIR}/apt.log" 2>&1 || die "apt-get install redis-server failed; see ${LOG_DIR}/apt.log"
  fi
}

# name -> data dir / files. Names: eu, us-<port>.
redis_dir() { printf '%s/%s\n' "${REDIS_DIR}" "$1"; }
redis_pid_file() { printf '%s/redis-%s.pid\n' "${RUN_DIR}" "$1"; }
redis_log() { printf '%s/redis-%s.log\n' "${LOG_DIR}" "$1"; }

# True if the Redis on $port is the one this stack started (its data dir is ours).
redis_is_ours() {
  local dir ours
  dir="$(rcli "$1" config get dir | sed -n 2p)" || return 1
  ours="$(cd "$(redis_dir "$2")" 2>/dev/null && pwd -P)" || return 1
  [[ -n "${dir}" && "${dir}" == "${ours}" ]]
}

# write_redis_config <conf> <port> <cluster yes|no> <dir> <pid file> <log file>
write_redis_config() {
  local conf="$1" port="$2" cluster="$3" dir="$4" pid_file="$5" log_file="$6"
  cat >"${conf}" <<EOF
# Generated by deploy/local/stack.sh
port ${port}
bind 127.0.0.1
protected-mode no
daemonize yes
pidfile "${pid_file}"
logfile "${log_file}"
dir "${dir}"
save ""
appendonly no
EOF
  if [[ "${cluster}" == "yes" ]]; then
    cat >>"${conf}" <<EOF
cluster-enabled yes
cluster-config-file "${dir}/nodes.conf"
cluster-node-timeout 5000
EOF
  fi
}

start_redis() {
  local name="$1" port="$2" cluster="$3" dir conf pid_file log_file deadline
  dir="$(redis_dir "${name}")"
  pid_file="$(redis_pid_file "${name}")"
  log_file="$(redis_log "${name}")"
  if redis_ping "${port}"; then
    redis_is_ours "${port}" "${name}" \
      || die "redis-${name}: port ${port} is already used by another Redis (set REDIS_EU_PORT / REDIS_US_PORT)"
    log "redis-${name} already running on ${port}"
    return 0
  fi
  port_open "${port}" && die "redis-${name}: port ${port} is already in use by another process"
  mkdir -p "${dir}"
  conf="${dir}/redis.conf"
  "${REDIS_CONFIG_WRITER}" "${conf}" "${port}" "${cluster}" "${dir}" "${pid_file}" "${log_file}"
  log "starting redis-${name} on 127.0.0.1:${port} (log: ${log_file})"
  redis-server "${conf}" </dev/null >>"${log_file}" 2>&1 9>&- \
    || die "redis-${name} failed to start; see ${log_file}"
  deadline=$(( $(now) + REDIS_TIMEOUT ))
  until redis_ping "${port}"; do
    (( $(now) < deadline )) || die "redis-${name} did not answer PING on ${port} within ${REDIS_TIMEOUT}s; see ${log_file}"
    sleep 0.1
  done
}

# A us node that is not running yet needs its bus port (client port + 10000) free.
check_bus_ports_free() {
  local i
  for i in "${!US_PORTS[@]}"; do
    if redis_ping "${US_PORTS[$i]}" && redis_is_ours "${US_PORTS[$i]}" "us-${US_PORTS[$i]}"; then
      continue
    fi
    if port_open "${US_BUS_PORTS[$i]}"; then
      echo "stack.sh: error: redis-us node ${US_PORTS[$i]} needs its cluster bus port ${US_BUS_PORTS[$i]} (client port + 10000), which another process uses; set REDIS_US_PORT so that neither it, the next five ports, nor each + 10000 is taken" >&2
      exit 2
    fi
  done
}

cluster_ok() {
  local info
  info="$(rcli "$1" cluster info)" || return 1
  [[ "${info}" == *"cluster_state:ok"* ]]
}

cluster_known_nodes() {
  rcli "$1" cluster info | tr -d '\r' | awk -F: '$1 == "cluster_known_nodes" { print $2 }'
}

# Role summary of a us node: "master <connected replicas>" or "replica <link status>".
us_node_role() {
  rcli "$1" info replication | tr -d '\r' | awk -F: '
    $1 == "role" { role = ($2 == "slave") ? "replica" : $2 }
    $1 == "connected_slaves" { replicas = $2 }
    $1 == "master_link_status" { link = $2 }
    END { if (role == "master") print "master", replicas; else if (role != "") print role, link }'
}

# True when every us node is cluster_state:ok, each master has its replica(s) connected and
# each replica's link to its master is up (WAIT on a master then counts its replica).
us_cluster_complete() {
  local port role masters=0 replicas=0
  for port in "${US_PORTS[@]}"; do
    cluster_ok "${port}" || return 1
    role="$(us_node_role "${port}")"
    case "${role}" in
      "master ${US_REPLICAS_PER_MASTER}") masters=$((masters + 1)) ;;
      "replica up") replicas=$((replicas + 1)) ;;
      *) return 1 ;;
    esac
  done
  (( masters * (US_REPLICAS_PER_MASTER + 1) == US_NODES && replicas + masters == US_NODES ))
}

# A us cluster created by an older stack.sh (3 masters, no replicas) is recreated from scratch:
# its nodes.conf would keep the old membership. The cache data is disposable.
reset_outdated_us_cluster() {
  local conf members port
  conf="$(redis_dir "us-${REDIS_US_PORT}")/nodes.conf"
  [[ -f "${conf}" ]] || return 0
  members="$(grep -cv '^vars ' "${conf}" || true)"
  (( members == US_NODES )) && return 0
  log "redis-us: ${conf} knows ${members} nodes, not ${US_NODES}: recreating the cluster"
  for port in "${US_PORTS[@]}"; do
    stop_redis "us-${port}" "${port}"
    rm -rf "$(redis_dir "us-${port}")"
  done
}

ensure_us_cluster() {
  local port deadline addrs=() log_file
  log_file="$(redis_log "us-${REDIS_US_PORT}")"
  if us_cluster_complete; then log "redis-us cluster ok"; return 0; fi
  # Nodes that already know each other (nodes.conf kept across restarts) converge on their
  # own; only a never-joined first node means the cluster has to be created.
  if [[ "$(cluster_known_nodes "${REDIS_US_PORT}")" == "1" ]]; then
    for port in "${US_PORTS[@]}"; do addrs+=("127.0.0.1:${port}"); done
    log "creating redis-us cluster ${addrs[*]} (3 masters + 3 replicas)"
    with_rcli_auth redis-cli "${RCLI_OPTIONS[@]}" --cluster create "${addrs[@]}" --cluster-replicas "${US_REPLICAS_PER_MASTER}" \
      --cluster-yes >>"${log_file}" 2>&1 || die "redis-cli --cluster create failed; see ${log_file}"
  fi
  deadline=$(( $(now) + REDIS_TIMEOUT ))
  until us_cluster_complete; do
    (( $(now) < deadline )) \
      || die "redis-us: not every node cluster_state:ok with each master's replica linked within ${REDIS_TIMEOUT}s; see ${LOG_DIR}/redis-us-*.log"
    sleep 0.2
  done
  log "redis-us cluster ok"
}

stop_redis() {
  local name="$1" port="$2" pid_file pid deadline
  pid_file="$(redis_pid_file "${name}")"
  pid="$(read_pid "${pid_file}")"
  if redis_ping "${port}" && redis_is_ours "${port}" "${name}"; then
    log "stopping redis-${name} (${port})"
    rcli "${port}" shutdown nosave >/dev/null || true
  fi
  if pid_alive "${pid}" && [[ "$(ps -ww -o args= -p "${pid}" 2>/dev/null)" == *redis-server* ]]; then
    deadline=$(( $(now) + 10 ))
    while pid_alive "${pid}" && (( $(now) < deadline )); do sleep 0.1; done
    if pid_alive "${pid}"; then
      log "redis-${name} still running, killing pid ${pid}"
      kill -TERM "${pid}" 2>/dev/null || true
      sleep 1
      kill -KILL "${pid}" 2>/dev/null || true
    fi
  fi
  rm -f "${pid_file}"
}

# ---------------------------------------------------------------------------- postgres

# A server of its own (initdb + pg_ctl on $STACK_DIR/postgres/data), never Debian's system
# cluster. It listens on 127.0.0.1 only, without a Unix socket, and trusts every connection from
# there (superuser "postgres", no password): fine for a dev stack, not for anything shared.
POSTGRES_LOG="${LOG_DIR}/postgres.log"

pg_bindir_has_server() { [[ -x "$1/initdb" && -x "$1/pg_ctl" && -x "$1/postgres" && -x "$1/psql" ]]; }

# POSTGRES_BINDIR, else pg_config's bindir, else the newest /usr/lib/postgresql/<version>/bin
# (pg_config may come from libpq-dev, whose bindir need not hold a server).
find_postgres_bindir() {
  local dir
  if [[ -n "${POSTGRES_BINDIR}" ]]; then
    pg_bindir_has_server "${POSTGRES_BINDIR}" \
      || die "POSTGRES_BINDIR=${POSTGRES_BINDIR} lacks initdb, pg_ctl, postgres or psql"
    return 0
  fi
  dir="$(pg_config --bindir 2>/dev/null || true)"
  if [[ -n "${dir}" ]] && pg_bindir_has_server "${dir}"; then POSTGRES_BINDIR="${dir}"; return 0; fi
  while read -r dir; do
    if pg_bindir_has_server "${dir}"; then POSTGRES_BINDIR="${dir}"; return 0; fi
  done < <(compgen -G '/usr/lib/postgresql/*/bin' | sort -rV)
  return 1
}

require_postgres() {
  find_postgres_bindir && return 0
  if [[ "$(id -u)" != "0" ]] || ! command -v apt-get >/dev/null; then
    die "PostgreSQL server binaries not found (initdb, pg_ctl under /usr/lib/postgresql/*/bin); install the postgresql package or set POSTGRES_BINDIR"
  fi
  log "installing postgresql with apt-get"
  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; } \
    >"${LOG_DIR}/apt.log" 2>&1 || die "apt-get install postgresql failed; see ${LOG_DIR}/apt.log"
  find_postgres_bindir || die "postgresql installed, but no initdb/pg_ctl under /usr/lib/postgresql/*/bin"
}

# Run a server tool as the owner of the data: initdb and pg_ctl refuse to run as root.
pg_as() {
  if [[ "$(id -u)" == "0" ]]; then
    (cd / && runuser -u "${POSTGRES_OS_USER}" -- "$@")
  else
    "$@"
  fi
}

# psql against database $1 on the stack's server, one unaligned value per row.
pg_sql() {
  PGCONNECT_TIMEOUT=5 timeout 10 "${POSTGRES_BINDIR}/psql" -h 127.0.0.1 -p "${POSTGRES_PORT}" \
    -U postgres -d "$1" -X -q -t -A -v ON_ERROR_STOP=1 -c "$2"
}

# The postmaster's pid if it runs on our data dir (postmaster.pid, guarded against pid reuse).
postgres_pid() {
  local pid
  [[ -f "${POSTGRES_DATA}/postmaster.pid" ]] || return 0
  pid="$(head -n 1 "${POSTGRES_DATA}/postmaster.pid" | tr -dc '0-9')"
  if pid_alive "${pid}" && [[ "$(ps -ww -o args= -p "${pid}" 2>/dev/null)" == *"${POSTGRES_DATA}"* ]]; then
    printf '%s\n' "${pid}"
  fi
}

# True when user POSTGRES_OS_USER can enter directory $1, or, while $1 does not exist yet, its
# nearest existing parent (what up creates there is world-traversable).
postgres_user_enters() {
  local dir="$1"
  until [[ -d "${dir}" ]]; do dir="$(dirname "${dir}")"; done
  pg_as test -x "${dir}"
}

# As root the server runs as POSTGRES_OS_USER, who must reach its data directory and log. When
# it cannot enter STACK_DIR (a parent closed to it: a clone under /root or in a `mktemp -d`),
# both live in POSTGRES_REACHABLE_ROOT/stack-<hash of STACK_DIR> instead, one directory per stack
# so that two stacks never share one; $LOG_DIR/postgres.log then links to the log there
# (docs/decisions.md). Run before any command that touches PostgreSQL's files.
locate_postgres() {
  local key
  [[ "$(id -u)" == "0" ]] && id "${POSTGRES_OS_USER}" >/dev/null 2>&1 || return 0
  postgres_user_enters "${STACK_DIR}" && return 0
  key="$(realpath -m "${STACK_DIR}" | sha256sum | cut -c 1-16)"
  POSTGRES_DIR="${POSTGRES_REACHABLE_ROOT}/stack-${key}"
  POSTGRES_DATA="${POSTGRES_DIR}/data"
  POSTGRES_LOG="${POSTGRES_DIR}/postgres.log"
}

# POSTGRES_REACHABLE_ROOT, made if missing: owned by root, writable by nobody else, traversable
# by all (not listable), so no other user can plant or swap a stack's directory in it.
ensure_postgres_reachable_root() {
  local root="${POSTGRES_REACHABLE_ROOT}"
  [[ -e "${root}" ]] || mkdir -p -m 0711 "${root}"
  [[ -d "${root}" && ! -L "${root}" && "$(stat -c %u "${root}")" == 0 ]] \
    || die "${root} (POSTGRES_REACHABLE_ROOT) must be a directory owned by root, not a link"
  [[ -z "$(find "${root}" -maxdepth 0 -perm /022)" ]] \
    || die "${root} (POSTGRES_REACHABLE_ROOT) is writable by others than root; chmod 0711 it"
}

# As root, the server's user must own its directory and log and reach them; checked before
# anything starts.
prepare_postgres_dirs() {
  if [[ "$(id -u)" == "0" ]]; then
    id "${POSTGRES_OS_USER}" >/dev/null 2>&1 \
      || die "stack.sh runs as root and PostgreSQL refuses to: user ${POSTGRES_OS_USER} (POSTGRES_OS_USER) to run it as does not exist"
    [[ "${POSTGRES_DIR}" == "${STACK_DIR}/"* ]] || ensure_postgres_reachable_root
  fi
  mkdir -p "${POSTGRES_DIR}"
  touch "${POSTGRES_LOG}"
  if [[ "${POSTGRES_DIR}" != "${STACK_DIR}/"* ]]; then
    chmod 0700 "${POSTGRES_DIR}"
    printf '%s\n' "${STACK_DIR}" >"${POSTGRES_DIR}/stack-dir"  # whose directory this is
    ln -sfn "${POSTGRES_LOG}" "${LOG_DIR}/postgres.log"
  fi
  [[ "$(id -u)" == "0" ]] || return 0
  chown "${POSTGRES_OS_USER}:" "${POSTGRES_DIR}" "${POSTGRES_LOG}"
  pg_as test -w "${POSTGRES_DIR}" \
    || die "user ${POSTGRES_OS_USER} cannot reach ${POSTGRES_DIR} (a parent directory is closed to it); choose another STACK_DIR"
}

# initdb into a scratch dir, moved into place once complete (an interrupted initdb leaves no
# half-made data dir behind).
init_postgres_data() {
  local tmp="${POSTGRES_DATA}.init"
  [[ -f "${POSTGRES_DATA}/PG_VERSION" ]] && return 0
  rm -rf "${tmp}"
  log "initialising postgres data in ${POSTGRES_DATA}"
  # --no-sync: initdb skips its final fsync (a disposable dev database; the server itself syncs).
  pg_as "${POSTGRES_BINDIR}/initdb" -D "${tmp}" -U postgres -E UTF8 --no-locale --auth=trust \
    --no-sync >>"${POSTGRES_LOG}" 2>&1 || die "initdb failed; see ${POSTGRES_LOG}"
  cat >"${tmp}/pg_hba.conf" <<'HBA'
# Written by deploy/local/stack.sh. A dev stack: trust, and only from 127.0.0.1 (the server
# listens nowhere else and has no Unix socket).
host  all  all  127.0.0.1/32  trust
HBA
  mv "${tmp}" "${POSTGRES_DATA}"
}

# Debezium streams over a replication connection, which "all" in pg_hba.conf does not cover: a
# data dir made by an older stack.sh gets the line too (read at the server's next start).
POSTGRES_REPLICATION_HBA="host  replication  all  127.0.0.1/32  trust"
ensure_postgres_replication_hba() {
  grep -qxF "${POSTGRES_REPLICATION_HBA}" "${POSTGRES_DATA}/pg_hba.conf" && return 0
  printf '%s\n' "${POSTGRES_REPLICATION_HBA}" >>"${POSTGRES_DATA}/pg_hba.conf"
}

# Starts the server without waiting (wait_postgres does, once Redis is up).
start_postgres() {
  local pid
  pid="$(postgres_pid)"
  if [[ -n "${pid}" ]]; then
    log "postgres already running (pid ${pid})"
    return 0
  fi
  port_open "${POSTGRES_PORT}" \
    && die "postgres: port ${POSTGRES_PORT} is already in use by another process (set POSTGRES_PORT)"
  init_postgres_data
  ensure_postgres_replication_hba
  # Not our running server: a pid file left by a killed one could name a live, unrelated pid.
  rm -f "${POSTGRES_DATA}/postmaster.pid"
  log "starting postgres $("${POSTGRES_BINDIR}/postgres" --version | awk '{ print $3 }') on 127.0.0.1:${POSTGRES_PORT} (log: ${POSTGRES_LOG})"
  # wal_level=logical (and slots, senders) for Debezium's logical decoding: always on, since
  # changing it needs a restart; it costs a little more WAL per write.
  pg_as "${POSTGRES_BINDIR}/pg_ctl" start --no-wait -D "${POSTGRES_DATA}" -l "${POSTGRES_LOG}" \
    -o "-c listen_addresses=127.0.0.1 -c port=${POSTGRES_PORT} -c unix_socket_directories='' -c wal_level=logical -c max_replication_slots=10 -c max_wal_senders=10" \
    </dev/null >>"${POSTGRES_LOG}" 2>&1 9>&- || die "pg_ctl start failed; see ${POSTGRES_LOG}"
}

# Wait until the server answers, then create the outbox database if it is missing.
wait_postgres() {
  local deadline=$(( $(now) + POSTGRES_TIMEOUT ))
  until [[ "$(pg_sql postgres 'SELECT 1' 2>/dev/null)" == 1 ]]; do
    (( $(now) < deadline )) \
      || die "postgres did not answer on 127.0.0.1:${POSTGRES_PORT} within ${POSTGRES_TIMEOUT}s; see ${POSTGRES_LOG}"
    sleep 0.1
  done
  if [[ "$(pg_sql postgres "SELECT 1 FROM pg_database WHERE datname = '${POSTGRES_DATABASE}'")" != 1 ]]; then
    log "creating database ${POSTGRES_DATABASE}"
    pg_sql postgres "CREATE DATABASE ${POSTGRES_DATABASE}" 2>>"${POSTGRES_LOG}" \
      || die "creating database ${POSTGRES_DATABASE} failed; see ${POSTGRES_LOG}"
  fi
}

# SIGINT is PostgreSQL's fast shutdown (sessions are cut, the data is checkpointed).
stop_postgres() {
  local pid deadline
  pid="$(postgres_pid)"
  [[ -n "${pid}" ]] || return 0
  log "stopping postgres (pid ${pid})"
  kill -INT "${pid}" 2>/dev/null || true
  deadline=$(( $(now) + POSTGRES_STOP_TIMEOUT ))
  while pid_alive "${pid}" && (( $(now) < deadline )); do sleep 0.1; done
  if pid_alive "${pid}"; then
    log "postgres pid ${pid} did not stop within ${POSTGRES_STOP_TIMEOUT}s, sending SIGKILL (see ${POSTGRES_LOG})"
    kill -KILL "${pid}" 2>/dev/null || true
    while pid_alive "${pid}"; do sleep 0.1; done
  fi
}

# ---------------------------------------------------------------------------- mirrored topology
# Two more single-node KRaft clusters (eu, us) with the same broker settings, the link proxy
# between them and one MirrorMaker 2 per target region (docs: deploy/local/README.md).

# in_cluster <eu|us> <command> [args]: run a kafka function above on that region's cluster. Its
# description is bound as locals here, and bash's dynamic scoping shows them to every function
# the command calls.
in_cluster() {
  local region="$1"; shift
  local KAFKA_NAME="kafka-${region}" KAFKA_BROKERS=1 KAFKA_TOPICS=""
  local KAFKA_PORT KAFKA_CONTROLLER_PORT KAFKA_LINK_PORT KAFKA_LINK_ADVERTISED_PORT
  KAFKA_PORT="$(mirror_port "${region}" client)"
  KAFKA_CONTROLLER_PORT="$(mirror_port "${region}" controller)"
  KAFKA_LINK_PORT="$(mirror_port "${region}" link)"
  KAFKA_LINK_ADVERTISED_PORT="$(mirror_port "${region}" proxy)"
  local KAFKA_DIR="${MIRROR_DIR}/kafka-${region}"
  local KAFKA_ADMIN_CONFIG="${MIRROR_DIR}/kafka-${region}/admin.properties"
  local KAFKA_BROKERS_FILE="${RUN_DIR}/kafka-${region}.brokers"
  "$@"
}

other_region() { if [[ "$1" == eu ]]; then echo us; else echo eu; fi; }

# The event topics of topics.txt (names ending in .events): what MirrorMaker mirrors. The
# dead-letter topic is not among them: dead letters stay in their region.
event_topics() { read_topics | awk '$1 ~ /\.events$/ { print $1 }'; }

# Their full-match regex as a properties file value: java.util.Properties turns "\." into ".",
# so each dot is written "\\." (e.g. orders\\.events|companies\\.events).
event_topics_regex() {
  local name parts=()
  while read -r name; do parts+=("${name//./\\\\.}"); done < <(event_topics)
  (( ${#parts[@]} )) || die "no event topics (*.events) in ${TOPICS_FILE}"
  (IFS='|'; printf '%s\n' "${parts[*]}")
}

wait_mirror_cluster() { wait_kafka; ensure_topics; }

link_pid_file() { printf '%s/link.pid\n' "${RUN_DIR}"; }
link_log() { printf '%s/link.log\n' "${LOG_DIR}"; }
link_pid() {
  local pid
  pid="$(read_pid "$(link_pid_file)")"
  if pid_alive "${pid}" && [[ "$(ps -ww -o args= -p "${pid}" 2>/dev/null)" == *"${LINK_PROXY}"*"--control-port ${MIRROR_LINK_CONTROL_PORT}"* ]]; then
    printf '%s\n' "${pid}"
  fi
}

# One control command to the link; its answer line on stdout.
link_command() {
  local answer
  exec 7<>"/dev/tcp/127.0.0.1/${MIRROR_LINK_CONTROL_PORT}" || return 1
  printf '%s\n' "$1" >&7
  IFS= read -r -t 5 answer <&7 || { exec 7>&-; return 1; }
  exec 7>&-
  printf '%s\n' "${answer}"
}

start_link() {
  local pid port region routes=()
  pid="$(link_pid)"
  if [[ -n "${pid}" ]]; then
    log "link already running (pid ${pid}; its delay and cut state are left as they are)"
    return 0
  fi
  rm -f "$(link_pid_file)"
  command -v python3 >/dev/null || die "python3 not found (the link proxy runs on it)"
  for region in "${MIRROR_REGIONS[@]}"; do
    port="$(mirror_port "${region}" proxy)"
    port_open "${port}" && die "link: port ${port} is already in use by another process (set MIRROR_${region^^}_KAFKA_PORT)"
    routes+=(--route "${port}:127.0.0.1:$(mirror_port "${region}" link)")
  done
  port_open "${MIRROR_LINK_CONTROL_PORT}" \
    && die "link: control port ${MIRROR_LINK_CONTROL_PORT} is already in use by another process (set MIRROR_LINK_CONTROL_PORT)"
  log "starting the link (${MIRROR_LINK_DELAY_MS} ms one way, jitter +-${MIRROR_LINK_JITTER_MS} ms; control 127.0.0.1:${MIRROR_LINK_CONTROL_PORT}; log: $(link_log))"
  nohup python3 "${LINK_PROXY}" "${routes[@]}" --control-port "${MIRROR_LINK_CONTROL_PORT}" \
    --delay-ms "${MIRROR_LINK_DELAY_MS}" --jitter-ms "${MIRROR_LINK_JITTER_MS}" \
    </dev/null >>"$(link_log)" 2>&1 9>&- &
  echo $! >"$(link_pid_file)"
}

wait_link() {
  local deadline=$(( $(now) + LINK_START_TIMEOUT ))
  until [[ "$(link_command status 2>/dev/null)" == ok* ]]; do
    pid_alive "$(read_pid "$(link_pid_file)")" || die "the link proxy exited during startup; see $(link_log)"
    (( $(now) < deadline )) || die "the link proxy did not answer on 127.0.0.1:${MIRROR_LINK_CONTROL_PORT} within ${LINK_START_TIMEOUT}s; see $(link_log)"
    sleep 0.1
  done
}

stop_link() {
  local pid
  pid="$(link_pid)"
  if [[ -n "${pid}" ]]; then
    log "stopping the link (pid ${pid})"
    kill -TERM "${pid}" 2>/dev/null || true
    local deadline=$(( $(now) + 10 ))
    while pid_alive "${pid}" && (( $(now) < deadline )); do sleep 0.1; done
    if pid_alive "${pid}"; then kill -KILL "${pid}" 2>/dev/null || true; fi
  fi
  rm -f "$(link_pid_file)"
}

# MirrorMaker 2 of a target region: runs only the flow into it (--clusters <target>), reading
# the source cluster through the link and writing its own cluster directly.
mm2_config() { printf '%s/mm2-%s.properties\n' "${MIRROR_DIR}" "$1"; }
mm2_pid_file() { printf '%s/mm2-%s.pid\n' "${RUN_DIR}" "$1"; }
mm2_log() { printf '%s/mm2-%s.log\n' "${LOG_DIR}" "$1"; }
mm2_pid() {
  local pid
  pid="$(read_pid "$(mm2_pid_file "$1")")"
  if pid_alive "${pid}" && [[ "$(ps -ww -o args= -p "${pid}" 2>/dev/null)" == *"$(mm2_config "$1")"* ]]; then
    printf '%s\n' "${pid}"
  fi
}

write_mm2_config() {
  local target="$1" source
  source="$(other_region "${target}")"
  mkdir -p "${MIRROR_DIR}"
  {
    cat <<EOF
# Generated by deploy/local/stack.sh (up --mirrored); rewritten on every start of mm2-${target}.
# MirrorMaker 2 (Kafka ${KAFKA_VERSION}), dedicated mode, run with --clusters ${target}: only the flow
# ${source}->${target}. Why each setting: docs/decisions.md, "The mirrored topology of the local stack".
clusters = eu, us
# The source through the link proxy (its LINK listener advertises the proxy), the target directly.
${source}.bootstrap.servers = 127.0.0.1:$(mirror_port "${source}" proxy)
${target}.bootstrap.servers = 127.0.0.1:$(mirror_port "${target}" client)

EOF
    mm2_flow_properties "${target}"
  } >"$(mm2_config "${target}")"
}

# The properties of the flow into region $1 that every MirrorMaker of the stack shares (the
# plaintext and the secure mirrored topology).
mm2_flow_properties() {
  local target="$1" source
  source="$(other_region "${target}")"
  cat <<EOF
${source}->${target}.enabled = true
# The other direction is mm2-${source}'s.
${target}->${source}.enabled = false

# The event topics of topics.txt (full match; "\\\\." because java.util.Properties turns "\\." into
# "."). Not the dead-letter topic: dead letters stay in their region. DefaultReplicationPolicy:
# ${source}'s orders.events is ${source}.orders.events here, and never mirrored back.
topics = $(event_topics_regex)
refresh.topics.interval.seconds = 10
refresh.groups.interval.seconds = 10

# Offset syncs and checkpoints (offset translation for a manual move of a group); no group offset
# sync: each region's invalidator group reads its own cluster and rewinds by time.
emit.checkpoints.enabled = true
sync.group.offsets.enabled = false

# Single-broker clusters: every topic MirrorMaker creates has replication factor 1.
replication.factor = 1
offset-syncs.topic.replication.factor = 1
checkpoints.topic.replication.factor = 1
heartbeats.topic.replication.factor = 1
offset.storage.replication.factor = 1
status.storage.replication.factor = 1
config.storage.replication.factor = 1

# Latency: the worker producer that writes mirrored records (client default linger.ms = 5).
${source}->${target}.producer.override.linger.ms = 0
# Source-offset commits every second (default 60 s): fewer duplicates after a crash. Worker
# settings take the target's prefix; a top-level key would not reach the worker.
${target}.offset.flush.interval.ms = 1000

# Faster start: no classpath plugin scan (on all three keys, or the herders still scan).
plugin.discovery = service_load
eu.plugin.discovery = service_load
us.plugin.discovery = service_load
# MIRROR_MM2_EXTRA_PROPERTIES, one property a line (a later key wins): tuning experiments.
${MIRROR_MM2_EXTRA_PROPERTIES}
EOF
}

start_mm2() {
  local target="$1" pid log_file
  log_file="$(mm2_log "${target}")"
  pid="$(mm2_pid "${target}")"
  if [[ -n "${pid}" ]]; then
    log "mm2-${target} already running (pid ${pid})"
    return 0
  fi
  rm -f "$(mm2_pid_file "${target}")"
  "${MM2_CONFIG_WRITER}" "${target}"
  log "starting mm2-${target} (MirrorMaker 2, $(other_region "${target}")->${target}; log: ${log_file})"
  printf '===== %s stack.sh: starting mm2-%s =====\n' "$(date '+%F %T')" "${target}" >>"${log_file}"
  # shellcheck disable=SC2086  # MIRROR_MM2_HEAP_OPTS is a list of JVM flags
  nohup java ${MIRROR_MM2_HEAP_OPTS} -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
    -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="${LOG4J_CONFIG}" \
    -Dkafka.log.file="${log_file}" -Dkafka.log.level=INFO -Dkafka.logs.dir="${LOG_DIR}" \
    -cp "${LIBS_DIR}/*:${MIRROR_LIBS_DIR}/*" org.apache.kafka.connect.mirror.MirrorMaker \
    "$(mm2_config "${target}")" --clusters "${target}" \
    </dev/null >>"${log_file}" 2>&1 9>&- &
  echo $! >"$(mm2_pid_file "${target}")"
  MM2_STARTED+=("${target}")
}

# The topics MirrorMaker creates on a target: <source>.<event topic>.
mirrored_topics() {
  local source name
  source="$(other_region "$1")"
  while read -r name; do printf '%s.%s\n' "${source}" "${name}"; done < <(event_topics)
}

# Lines of a log written since the last "starting" banner stack.sh wrote into it.
since_last_start() {
  awk '/^===== .* stack.sh: starting /{ buf = "" } { buf = buf $0 "\n" } END { printf "%s", buf }' "$1" 2>/dev/null
}

# Wait until each target has its mirrored topics and every MirrorMaker started by this run has
# its source task replicating (a restarted one finds its topics there already).
MM2_STARTED=()
wait_mirrors() {
  local deadline=$(( $(now) + MIRROR_TIMEOUT )) target name pending listers listing="${RUN_DIR}/mirrored.topics"
  while :; do
    pending=()
    for target in "${MIRROR_REGIONS[@]}"; do
      pid_alive "$(read_pid "$(mm2_pid_file "${target}")")" \
        || die "mm2-${target} exited; see $(mm2_log "${target}")"
    done
    # The log first (cheap); the topic lists (a JVM each, both at once) only then.
    for target in "${MM2_STARTED[@]}"; do
      since_last_start "$(mm2_log "${target}")" | grep -q "replicating [0-9]* topic-partitions" \
        || pending+=("mm2-${target}'s source task (see $(mm2_log "${target}"))")
    done
    if (( ${#pending[@]} == 0 )); then
      listers=()
      for target in "${MIRROR_REGIONS[@]}"; do
        { "${MIRROR_CLUSTER}" "${target}" topics_cmd --list 2>>"${KAFKA_TOOLS_LOG}" || true; } >"${listing}.${target}" &
        listers+=("$!")
      done
      wait "${listers[@]}"  # not a bare wait: the brokers and MirrorMakers are children too
      for target in "${MIRROR_REGIONS[@]}"; do
        while read -r name; do
          grep -qxF "${name}" "${listing}.${target}" \
            || pending+=("${name} on kafka-${target} (see $(mm2_log "${target}"))")
        done < <(mirrored_topics "${target}")
        rm -f "${listing}.${target}"
      done
    fi
    (( ${#pending[@]} )) || return 0
    (( $(now) < deadline )) || die "mirroring not ready within ${MIRROR_TIMEOUT}s: waiting for ${pending[*]}"
    sleep 1
  done
}

stop_mm2() {
  local target="$1" pid deadline
  pid="$(mm2_pid "${target}")"
  if [[ -n "${pid}" ]]; then
    log "stopping mm2-${target} (pid ${pid})"
    kill -TERM "${pid}" 2>/dev/null || true
    deadline=$(( $(now) + MM2_STOP_TIMEOUT ))
    while pid_alive "${pid}" && (( $(now) < deadline )); do sleep 0.2; done
    if pid_alive "${pid}"; then
      log "mm2-${target} pid ${pid} did not stop within ${MM2_STOP_TIMEOUT}s, sending SIGKILL (see $(mm2_log "${target}"))"
      kill -KILL "${pid}" 2>/dev/null || true
      while pid_alive "${pid}"; do sleep 0.1; done
    fi
  fi
  rm -f "$(mm2_pid_file "${target}")"
}

# Start what is down of the mirrored topology's brokers and link (the JVMs warm up while the
# rest of the stack starts); finish_mirrored waits for them and starts MirrorMaker.
start_mirrored_clusters() {
  local region
  ensure_mirror_libs
  mkdir -p "${MIRROR_DIR}"
  for region in "${MIRROR_REGIONS[@]}"; do in_cluster "${region}" start_kafka; done
  start_link
}

finish_mirrored() {
  local region
  for region in "${MIRROR_REGIONS[@]}"; do in_cluster "${region}" wait_mirror_cluster; done
  wait_link
  for region in "${MIRROR_REGIONS[@]}"; do start_mm2 "${region}"; done
  wait_mirrors
  touch "${MIRROR_MARKER}"
}

stop_mirrored() {
  local region
  for region in "${MIRROR_REGIONS[@]}"; do stop_mm2 "${region}"; done
  stop_link
  for region in "${MIRROR_REGIONS[@]}"; do in_cluster "${region}" stop_kafka; done
  rm -f "${MIRROR_MARKER}"
}

mirrored_status() {
  local rc=0 region pid topics name missing answer
  for region in "${MIRROR_REGIONS[@]}"; do
    pid="$(in_cluster "${region}" kafka_pid 1)"
    if [[ -n "${pid}" ]] && port_open "$(mirror_port "${region}" client)"; then
      printf '%-9s up   127.0.0.1:%s (LINK %s, through the link %s) pid %s\n' "kafka-${region}" \
        "$(mirror_port "${region}" client)" "$(mirror_port "${region}" link)" \
        "$(mirror_port "${region}" proxy)" "${pid}"
    else
      printf '%-9s down 127.0.0.1:%s (log: %s)\n' "kafka-${region}" \
        "$(mirror_port "${region}" client)" "${LOG_DIR}/kafka-${region}.log"
      rc=1
      continue
    fi
    missing=()
    if topics="$(in_cluster "${region}" topics_cmd --list 2>>"${KAFKA_TOOLS_LOG}")"; then
      while read -r name _; do
        grep -qxF "${name}" <<<"${topics}" || missing+=("${name}")
      done < <(read_topics; mirrored_topics "${region}")
      if (( ${#missing[@]} )); then
        printf '%-9s DEGRADED, missing topics: %s\n' "kafka-${region}" "${missing[*]}"
        rc=1
      else
        printf '%-9s topics ok (mirrored in: %s)\n' "kafka-${region}" \
          "$(mirrored_topics "${region}" | paste -sd, -)"
      fi
    else
      printf '%-9s no answer from 127.0.0.1:%s\n' "kafka-${region}" "$(mirror_port "${region}" client)"
      rc=1
    fi
  done
  if answer="$(link_command status 2>/dev/null)" && [[ "${answer}" == ok* ]]; then
    printf '%-9s up   control 127.0.0.1:%s pid %s %s\n' link "${MIRROR_LINK_CONTROL_PORT}" \
      "$(link_pid)" "${answer#ok }"
  else
    printf '%-9s down control 127.0.0.1:%s (log: %s)\n' link "${MIRROR_LINK_CONTROL_PORT}" "$(link_log)"
    rc=1
  fi
  for region in "${MIRROR_REGIONS[@]}"; do
    pid="$(mm2_pid "${region}")"
    if [[ -n "${pid}" ]]; then
      printf '%-9s up   %s->%s pid %s\n' "mm2-${region}" "$(other_region "${region}")" "${region}" "${pid}"
    else
      printf '%-9s down %s->%s (log: %s)\n' "mm2-${region}" "$(other_region "${region}")" \
        "${region}" "$(mm2_log "${region}")"
      rc=1
    fi
  done
  return "${rc}"
}

# ---------------------------------------------------------------------------- kafka connect + debezium
# One standalone Kafka Connect worker (up --debezium) with Debezium's PostgreSQL connector on its
# plugin path; connectors are created over its REST API (`outbox debezium-config` renders the
# outbox's). Standalone: source offsets in $STACK_DIR/connect/offsets; connectors created over
# REST are not kept across a restart of the worker (PUT them again; their offsets are kept).

connect_pid() {
  local pid
  pid="$(read_pid "${CONNECT_PID_FILE}")"
  if pid_alive "${pid}" && [[ "$(ps -ww -o args= -p "${pid}" 2>/dev/null)" == *"${CONNECT_CONFIG}"* ]]; then
    printf '%s\n' "${pid}"
  fi
}

connect_url() { printf 'http://127.0.0.1:%s\n' "${CONNECT_PORT}"; }

write_connect_config() {
  mkdir -p "${CONNECT_DIR}"
  cat >"${CONNECT_CONFIG}" <<EOF
# Generated by deploy/local/stack.sh; rewritten on every start.
bootstrap.servers=$(kafka_bootstrap)
listeners=$(connect_url)
plugin.path=${DEBEZIUM_PLUGINS_DIR}
# No reflective classpath scan (hybrid_warn, the default): a faster start and a smaller heap.
plugin.discovery=service_load
# Connectors set their own converters (the outbox's: BinaryDataConverter); these are the defaults.
key.converter=org.apache.kafka.connect.converters.ByteArrayConverter
value.converter=org.apache.kafka.connect.converters.ByteArrayConverter
offset.storage.file.filename=${CONNECT_OFFSETS}
# Connect's default is 60 s: after a crash the rows since the last flush are published again.
offset.flush.interval.ms=10000
# Kafka 4 clients linger 5 ms by default.
producer.linger.ms=0
# Secrets by reference: a connector's database.password may be \${file:/path:key}.
config.providers=file
config.providers.file.class=org.apache.kafka.common.config.provider.FileConfigProvider
EOF
}

start_connect() {
  local pid
  pid="$(connect_pid)"
  if [[ -n "${pid}" ]]; then
    log "connect already running (pid ${pid})"
    return 0
  fi
  rm -f "${CONNECT_PID_FILE}"
  port_open "${CONNECT_PORT}" \
    && die "connect: port ${CONNECT_PORT} is already in use by another process (set CONNECT_PORT)"
  write_connect_config
  log "starting connect (Kafka Connect ${KAFKA_VERSION}, Debezium ${DEBEZIUM_VERSION}) on $(connect_url) (log: ${CONNECT_LOG})"
  printf '===== %s stack.sh: starting connect =====\n' "$(date '+%F %T')" >>"${CONNECT_LOG}"
  # shellcheck disable=SC2086  # CONNECT_HEAP_OPTS is a list of JVM flags
  nohup java ${CONNECT_HEAP_OPTS} -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
    -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="${LOG4J_CONFIG}" \
    -Dkafka.log.file="${CONNECT_LOG}" -Dkafka.log.level=INFO -Dkafka.logs.dir="${LOG_DIR}" \
    -cp "${LIBS_DIR}/*:${MIRROR_LIBS_DIR}/*" org.apache.kafka.connect.cli.ConnectStandalone \
    "${CONNECT_CONFIG}" </dev/null >>"${CONNECT_LOG}" 2>&1 9>&- &
  echo $! >"${CONNECT_PID_FILE}"
}

# Up = the REST API answers and lists Debezium's PostgreSQL connector among its plugins.
connect_ready() {
  curl -sf --max-time 5 "$(connect_url)/connector-plugins" 2>/dev/null \
    | grep -q 'io.debezium.connector.postgresql.PostgresConnector'
}

wait_connect() {
  local deadline=$(( $(now) + CONNECT_TIMEOUT ))
  until connect_ready; do
    pid_alive "$(read_pid "${CONNECT_PID_FILE}")" || die "connect exited during startup; see ${CONNECT_LOG}"
    (( $(now) < deadline )) \
      || die "connect did not list the Debezium PostgreSQL connector on $(connect_url) within ${CONNECT_TIMEOUT}s; see ${CONNECT_LOG}"
    sleep 0.5
  done
}

stop_connect() {
  local pid deadline
  pid="$(connect_pid)"
  if [[ -n "${pid}" ]]; then
    log "stopping connect (pid ${pid})"
    kill -TERM "${pid}" 2>/dev/null || true
    deadline=$(( $(now) + CONNECT_STOP_TIMEOUT ))
    while pid_alive "${pid}" && (( $(now) < deadline )); do sleep 0.2; done
    if pid_alive "${pid}"; then
      log "connect pid ${pid} did not stop within ${CONNECT_STOP_TIMEOUT}s, sending SIGKILL (see ${CONNECT_LOG})"
      kill -KILL "${pid}" 2>/dev/null || true
      while pid_alive "${pid}"; do sleep 0.1; done
    fi
  fi
  rm -f "${CONNECT_PID_FILE}" "${CONNECT_MARKER}"
}

# Debezium needs wal_level=logical and replication connections: a server started by an older
# stack.sh (wal_level=replica) is restarted, a pg_hba.conf without the line reloaded.
ensure_postgres_logical() {
  local level
  level="$(pg_sql postgres 'SHOW wal_level')" || die "postgres does not answer; see ${POSTGRES_LOG}"
  if [[ "${level}" != logical ]]; then
    log "postgres runs with wal_level=${level}; restarting it with wal_level=logical for Debezium"
    stop_postgres
    start_postgres
    wait_postgres
  elif ! grep -qxF "${POSTGRES_REPLICATION_HBA}" "${POSTGRES_DATA}/pg_hba.conf"; then
    ensure_postgres_replication_hba
    pg_sql postgres 'SELECT pg_reload_conf()' >/dev/null || die "postgres did not reload pg_hba.conf; see ${POSTGRES_LOG}"
  fi
}

# When the broker already runs, up starts the worker's JVM early, to warm up while the rest is
# checked; else once the broker answers (the worker exits when it finds no broker within a
# minute). finish_debezium waits for it.
CONNECT_STARTED=0
start_debezium() {
  (( ! CONNECT_STARTED )) || return 0
  CONNECT_STARTED=1
  ensure_mirror_libs
  ensure_debezium_libs
  start_connect
}

finish_debezium() {
  ensure_postgres_logical
  wait_connect
  touch "${CONNECT_MARKER}"
}

connect_status() {
  local pid
  pid="$(connect_pid)"
  if [[ -n "${pid}" ]] && connect_ready; then
    printf '%-9s up   %s (Debezium %s) pid %s\n' connect "$(connect_url)" "${DEBEZIUM_VERSION}" "${pid}"
  else
    printf '%-9s down %s (log: %s)\n' connect "$(connect_url)" "${CONNECT_LOG}"
    return 1
  fi
}

print_debezium_env() { printf 'export DEBEZIUM_CONNECT_URL=%s\n' "$(connect_url)"; }

# ---------------------------------------------------------------------------- commands

cmd_up() {
  local t0 port kafka_only=0 mirrored=0 debezium=0
  while (( $# )); do
    case "$1" in
      --brokers) [[ $# -ge 2 ]] || { usage; exit 2; }; KAFKA_BROKERS="$2"; shift 2 ;;
      --kafka-only) kafka_only=1; shift ;;
      --mirrored) mirrored=1; shift ;;
      --debezium) debezium=1; shift ;;
      *) usage; exit 2 ;;
    esac
  done
  resolve_brokers
  (( ! mirrored )) || check_mirror_port_plan
  if (( debezium )); then
    (( ! kafka_only )) || die "--debezium needs PostgreSQL: not with --kafka-only"
    check_connect_port_plan
  fi
  t0="$(now)"
  take_lock
  [[ -f "${TOPICS_FILE}" ]] || die "topics file ${TOPICS_FILE} not found"
  if (( ! kafka_only )); then
    require_redis
    require_postgres
    check_bus_ports_free
    prepare_postgres_dirs
  fi
  # Kafka first: its JVM warms up in the background while PostgreSQL and Redis start.
  start_kafka
  (( ! mirrored )) || start_mirrored_clusters
  if (( debezium )) && port_open "${KAFKA_PORT}"; then start_debezium; fi
  if (( ! kafka_only )); then
    start_postgres
    start_redis eu "${REDIS_EU_PORT}" no
    reset_outdated_us_cluster
    for port in "${US_PORTS[@]}"; do start_redis "us-${port}" "${port}" yes; done
    ensure_us_cluster
    wait_postgres
  fi
  wait_kafka
  ensure_topics
  wait_group_coordinator
  (( ! mirrored )) || finish_mirrored
  if (( debezium )); then start_debezium; finish_debezium; fi
  log "stack up in $(( $(now) - t0 ))s"
  print_env
  (( ! mirrored )) || print_mirror_env
  (( ! debezium )) || print_debezium_env
}

cmd_down() {
  local purge=0 port mirrored_only=0 debezium_only=0
  while (( $# )); do
    case "$1" in
      --purge) purge=1; shift ;;
      --mirrored) mirrored_only=1; shift ;;
      --debezium) debezium_only=1; shift ;;
      *) usage; exit 2 ;;
    esac
  done
  take_lock
  stop_connect
  if (( debezium_only )); then
    if (( purge )); then
      log "purging the Connect worker's files under ${CONNECT_DIR}"
      rm -rf "${CONNECT_DIR}"
    fi
    log "connect down"
    return 0
  fi
  stop_mirrored
  if (( mirrored_only )); then
    if (( purge )); then
      log "purging the mirrored topology's data under ${MIRROR_DIR}"
      rm -rf "${MIRROR_DIR}"
    fi
    log "mirrored topology down"
    return 0
  fi
  stop_kafka
  stop_redis eu "${REDIS_EU_PORT}"
  for port in "${US_PORTS[@]}"; do stop_redis "us-${port}" "${port}"; done
  stop_postgres
  if (( purge )); then
    log "purging data and logs under ${STACK_DIR} (keeping ${STACK_DIR}/kafka-libs)"
    rm -rf "${KAFKA_DIR}" "${STACK_DIR}"/kafka-[0-9]* "${REDIS_DIR}" "${POSTGRES_DIR}" "${LOG_DIR}" \
      "${MIRROR_DIR}" "${CONNECT_DIR}"
  fi
  log "stack down"
}

cmd_status() {
  local rc=0 pid topics name missing=() port bad=() node
  for node in $(kafka_nodes); do
    pid="$(kafka_pid "${node}")"
    if [[ -n "${pid}" ]] && port_open "$(kafka_node_port "${node}")"; then
      printf 'kafka     up   127.0.0.1:%s node %s pid %s\n' "$(kafka_node_port "${node}")" "${node}" "${pid}"
    else
      printf 'kafka     down 127.0.0.1:%s node %s (log: %s)\n' "$(kafka_node_port "${node}")" "${node}" "$(kafka_node_log "${node}")"
      rc=1
    fi
  done
  if kafka_libs_present && topics="$(topics_cmd --list 2>>"${KAFKA_TOOLS_LOG}")"; then
    while read -r name _; do
      grep -qxF "${name}" <<<"${topics}" || missing+=("${name}")
    done < <(read_topics)
    if (( ${#missing[@]} )); then
      printf 'kafka     DEGRADED, missing topics: %s\n' "${missing[*]}"
      rc=1
    else
      printf 'kafka     topics ok\n'
    fi
  else
    printf 'kafka     no answer from %s\n' "$(kafka_bootstrap)"
    rc=1
  fi
  if redis_ping "${REDIS_EU_PORT}"; then
    printf 'redis-eu  up   127.0.0.1:%s\n' "${REDIS_EU_PORT}"
  else
    printf 'redis-eu  down 127.0.0.1:%s (log: %s)\n' "${REDIS_EU_PORT}" "$(redis_log eu)"
    rc=1
  fi
  for port in "${US_PORTS[@]}"; do cluster_ok "${port}" || bad+=("${port}"); done
  if (( ${#bad[@]} )); then
    printf 'redis-us  down 127.0.0.1:%s-%s (not ok: %s; logs: %s/redis-us-*.log)\n' \
      "${US_PORTS[0]}" "${US_LAST_PORT}" "${bad[*]}" "${LOG_DIR}"
    rc=1
  elif us_cluster_complete; then
    printf 'redis-us  up   127.0.0.1:%s-%s cluster_state:ok, 3 masters + 3 replicas linked\n' \
      "${US_PORTS[0]}" "${US_LAST_PORT}"
  else
    printf 'redis-us  DEGRADED 127.0.0.1:%s-%s cluster_state:ok, but a master lacks its replica\n' \
      "${US_PORTS[0]}" "${US_LAST_PORT}"
    rc=1
  fi
  if ! find_postgres_bindir; then
    printf 'postgres  down 127.0.0.1:%s (no PostgreSQL server binaries found)\n' "${POSTGRES_PORT}"
    rc=1
  elif [[ "$(pg_sql "${POSTGRES_DATABASE}" 'SELECT 1' 2>/dev/null)" == 1 ]]; then
    printf 'postgres  up   127.0.0.1:%s database %s pid %s\n' \
      "${POSTGRES_PORT}" "${POSTGRES_DATABASE}" "$(postgres_pid)"
  else
    printf 'postgres  down 127.0.0.1:%s database %s (log: %s)\n' \
      "${POSTGRES_PORT}" "${POSTGRES_DATABASE}" "${POSTGRES_LOG}"
    rc=1
  fi
  if [[ -f "${MIRROR_MARKER}" ]]; then mirrored_status || rc=1; fi
  if [[ -f "${CONNECT_MARKER}" ]]; then connect_status || rc=1; fi
  return "${rc}"
}

cmd_logs() {
  local follow=() files=() arg port node svc=""
  for arg in "$@"; do
    case "${arg}" in
      -f|--follow) follow=(-F) ;;
      kafka|redis-eu|redis-us|postgres|kafka-eu|kafka-us|mm2-eu|mm2-us|link|connect) svc="${arg}" ;;
      *) usage; exit 2 ;;
    esac
  done
  case "${svc}" in
    kafka-eu|kafka-us|mm2-eu|mm2-us|link|connect) files+=("${LOG_DIR}/${svc}.log") ;;
    "") if [[ -f "${MIRROR_MARKER}" ]]; then
          for arg in "${MIRROR_LOGS[@]}"; do files+=("${LOG_DIR}/${arg}.log"); done
        fi
        if [[ -f "${CONNECT_MARKER}" ]]; then files+=("${CONNECT_LOG}"); fi ;;
  esac
  if [[ -z "${svc}" || "${svc}" == kafka ]]; then
    for node in $(kafka_nodes); do files+=("$(kafka_node_log "${node}")"); done
  fi
  if [[ -z "${svc}" || "${svc}" == redis-eu ]]; then files+=("$(redis_log eu)"); fi
  if [[ -z "${svc}" || "${svc}" == redis-us ]]; then
    for port in "${US_PORTS[@]}"; do files+=("$(redis_log "us-${port}")"); done
  fi
  if [[ -z "${svc}" || "${svc}" == postgres ]]; then files+=("${POSTGRES_LOG}"); fi
  if (( ${#follow[@]} == 0 )); then
    local f existing=()
    for f in "${files[@]}"; do [[ -f "${f}" ]] && existing+=("${f}"); done
    (( ${#existing[@]} )) || die "no log files yet under ${LOG_DIR}"
    files=("${existing[@]}")
  fi
  exec tail -n 100 "${follow[@]}" "${files[@]}"
}

# `<command> --secure [args]`: the command on the secure profile (secure.sh), nothing else.
main_secure() {
  local cmd="$1" arg args=()
  shift
  for arg in "$@"; do [[ "${arg}" == --secure ]] || args+=("${arg}"); done
  check_secure_port_plan
  case "${cmd}" in
    up) in_secure cmd_up_secure "${args[@]}" ;;
    down) in_secure cmd_down_secure "${args[@]}" ;;
    status) in_secure cmd_status_secure ;;
    logs) in_secure cmd_logs "${args[@]}" ;;
    env) case "${args[*]}" in
           "") in_secure print_secure_env ;;
           --mirrored) in_secure print_secure_env; in_secure print_secure_mirror_env ;;
           *) usage; exit 2 ;;
         esac ;;
    *) usage; exit 2 ;;
  esac
}

main() {
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  if [[ " $* " == *" --secure "* ]]; then main_secure "${cmd}" "$@"; return; fi
  case "${cmd}" in up|down|status|logs) locate_postgres ;; esac
  case "${cmd}" in
    up) cmd_up "$@" ;;
    down) resolve_brokers; cmd_down "$@" ;;
    status) resolve_brokers; cmd_status ;;
    logs) resolve_brokers; cmd_logs "$@" ;;
    env) resolve_brokers
         local arg mirrored=0 debezium=0
         for arg in "$@"; do
           case "${arg}" in
             --mirrored) mirrored=1 ;;
             --debezium) debezium=1 ;;
             *) usage; exit 2 ;;
           esac
         done
         (( ! mirrored )) || check_mirror_port_plan
         (( ! debezium )) || check_connect_port_plan
         print_env
         (( ! mirrored )) || print_mirror_env
         (( ! debezium )) || print_debezium_env ;;
    libs) mkdir -p "${LOG_DIR}"; ensure_kafka_libs; ensure_mirror_libs; ensure_debezium_libs
          printf '%s\n' "${LIBS_DIR}" ;;
    -h|--help|help) usage ;;
    *) usage; exit 2 ;;
  esac
}

main "$@"
