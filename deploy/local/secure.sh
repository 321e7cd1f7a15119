# The secure profile of the local stack (`stack.sh up|down|status|logs|env --secure`), sourced by
# stack.sh: the same services on ports of their own, every client connection encrypted and
# logged in (docs: deploy/local/README.md, "The secure profile"):
#   kafka     SASL_SSL client listener (SCRAM-SHA-512), StandardAuthorizer, the ACLs of
#             deploy/kafka-acls.conf; `admin` is the only super user (and the broker itself on its
#             controller listener, on 127.0.0.1, TLS with the server's certificate as its client's)
#   redis-eu  standalone, TLS only (port 0), the users of deploy/redis-acl.conf, default user off
#   redis-us  Cluster of 3 masters + 3 replicas over TLS (clients, bus, replication), the same
#             users on every node, replicas logging in as `replica`
#   postgres  ssl=on, hostssl-only pg_hba.conf, user `relay` (scram-sha-256) owning `outbox`
# and with `up --secure --mirrored` its mirrored topology: the kafka above is region eu's cluster,
#   kafka-us  a second SASL_SSL cluster (the same settings, users and ACLs), region us's
#   mm2-eu, mm2-us  MirrorMaker 2 per target region (as `up --mirrored`, no link proxy), logged in
#             to both clusters as the principal `mirror`, its password read by the file config
#             provider (never in its properties, its log or its command line)
# Everything lives under $STACK_DIR/secure: a CA and a server certificate for localhost and
# 127.0.0.1 made with openssl at the first `up` (certs/), a password per user made at the first
# `up` (secrets/, 0700, one 0600 file each), then data, logs and pid files.

SECURE_KAFKA_PORT="${SECURE_KAFKA_PORT:-19192}"
SECURE_KAFKA_CONTROLLER_PORT="${SECURE_KAFKA_CONTROLLER_PORT:-19193}"
SECURE_REDIS_EU_PORT="${SECURE_REDIS_EU_PORT:-16479}"
SECURE_REDIS_US_PORT="${SECURE_REDIS_US_PORT:-17101}"   # and the next five; bus ports + 10000
SECURE_POSTGRES_PORT="${SECURE_POSTGRES_PORT:-15532}"
SECURE_MIRROR_US_KAFKA_PORT="${SECURE_MIRROR_US_KAFKA_PORT:-19292}"
SECURE_MIRROR_US_CONTROLLER_PORT="${SECURE_MIRROR_US_CONTROLLER_PORT:-19293}"
SECURE_KAFKA_HEAP_OPTS="${SECURE_KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}"   # beside the plaintext broker
SECURE_DIR="${STACK_DIR}/secure"
SECURE_CERTS_DIR="${SECURE_DIR}/certs"
SECURE_SECRETS_DIR="${SECURE_DIR}/secrets"
SECURE_CA="${SECURE_CERTS_DIR}/ca.pem"
SECURE_SERVER_CERT="${SECURE_CERTS_DIR}/server.pem"
SECURE_SERVER_KEY="${SECURE_CERTS_DIR}/server-key.pem"
SECURE_SERVER_BUNDLE="${SECURE_CERTS_DIR}/server-bundle.pem"   # key then certificate (Kafka PEM)
SECURE_CERT_DAYS=30
SECURE_PGPASS="${SECURE_SECRETS_DIR}/pgpass"
SECURE_KAFKA_MECHANISM=SCRAM-SHA-512
SECURE_KAFKA_ACLS="${REPO_ROOT}/deploy/kafka-acls.conf"
SECURE_REDIS_ACLS="${REPO_ROOT}/deploy/redis-acl.conf"
# Users, each with a password file secrets/<service>-<user> (secure_users): Kafka's are the
# principals of deploy/kafka-acls.conf and `admin` (setup only); Redis's the users of
# deploy/redis-acl.conf, `admin` (setup, status) and `replica` (a replica's login to its master:
# replication only); PostgreSQL's the superuser and the relay's user.
SECURE_POSTGRES_USERS=(postgres relay)
SECURE_POSTGRES_USER=relay
SECURE_MIRROR_USER=mirror   # MirrorMaker's Kafka principal (deploy/kafka-acls.conf)

for _port_var in SECURE_KAFKA_PORT SECURE_KAFKA_CONTROLLER_PORT SECURE_REDIS_EU_PORT \
    SECURE_REDIS_US_PORT SECURE_POSTGRES_PORT SECURE_MIRROR_US_KAFKA_PORT \
    SECURE_MIRROR_US_CONTROLLER_PORT; do
  [[ "${!_port_var}" =~ ^[0-9]+$ ]] || { echo "stack.sh: error: ${_port_var} must be a port number, got '${!_port_var}'" >&2; exit 2; }
done

# The secure profile's ports, apart from each other and from the plaintext stack's (checked by
# the --secure commands only).
check_secure_port_plan() {
  local seen=" " port name i
  for port in "${KAFKA_PORT}" "${KAFKA_CONTROLLER_PORT}" "${REDIS_EU_PORT}" "${POSTGRES_PORT}" \
      "${US_PORTS[@]}" "${US_BUS_PORTS[@]}"; do
    seen+="${port} "
  done
  for name in SECURE_KAFKA_PORT SECURE_KAFKA_CONTROLLER_PORT SECURE_REDIS_EU_PORT SECURE_POSTGRES_PORT \
      SECURE_MIRROR_US_KAFKA_PORT SECURE_MIRROR_US_CONTROLLER_PORT; do
    port="${!name}"
    [[ "${seen}" != *" ${port} "* ]] \
      || { echo "stack.sh: error: ${name}=${port} is also another service's port" >&2; exit 2; }
    seen+="${port} "
  done
  for (( i = 0; i < US_NODES; i++ )); do
    for port in "$(( SECURE_REDIS_US_PORT + i ))" "$(( SECURE_REDIS_US_PORT + i + 10000 ))"; do
      (( port <= 65535 )) || { echo "stack.sh: error: SECURE_REDIS_US_PORT=${SECURE_REDIS_US_PORT}: port ${port} (a node or its bus, + 10000) is above 65535" >&2; exit 2; }
      [[ "${seen}" != *" ${port} "* ]] \
        || { echo "stack.sh: error: SECURE_REDIS_US_PORT=${SECURE_REDIS_US_PORT} uses ${port} (its nodes are it and the next five, their bus ports + 10000), also another service's port" >&2; exit 2; }
      seen+="${port} "
    done
  done
}

# in_secure <command> [args]: run a command of stack.sh on the secure profile. Its files, ports
# and hooks are bound as locals here; bash's dynamic scoping shows them to every function the
# command calls (as in_cluster does for the mirrored clusters).
in_secure() {
  local STACK_DIR="${SECURE_DIR}"
  local LOG_DIR="${SECURE_DIR}/logs" RUN_DIR="${SECURE_DIR}/run"
  local KAFKA_TOOLS_LOG="${SECURE_DIR}/logs/kafka-tools.log"
  local KAFKA_NAME=kafka KAFKA_BROKERS=1 KAFKA_TOPICS="" KAFKA_LINK_PORT="" KAFKA_LINK_ADVERTISED_PORT=""
  local KAFKA_PORT="${SECURE_KAFKA_PORT}" KAFKA_CONTROLLER_PORT="${SECURE_KAFKA_CONTROLLER_PORT}"
  local KAFKA_HEAP_OPTS="${SECURE_KAFKA_HEAP_OPTS}"
  local KAFKA_DIR="${SECURE_DIR}/kafka"
  local KAFKA_ADMIN_CONFIG="${SECURE_DIR}/kafka/admin.properties"
  local KAFKA_BROKERS_FILE="${SECURE_DIR}/run/kafka.brokers"
  local KAFKA_CONFIG_WRITER=write_secure_kafka_config
  local KAFKA_STORAGE_FORMATTER=format_secure_kafka_storage
  local REDIS_DIR="${SECURE_DIR}/redis" REDIS_CONFIG_WRITER=write_secure_redis_config
  local REDIS_EU_PORT="${SECURE_REDIS_EU_PORT}" REDIS_US_PORT="${SECURE_REDIS_US_PORT}"
  local US_PORTS=() US_BUS_PORTS=() US_LAST_PORT _i
  for (( _i = 0; _i < US_NODES; _i++ )); do
    US_PORTS+=("$(( SECURE_REDIS_US_PORT + _i ))")
    US_BUS_PORTS+=("$(( SECURE_REDIS_US_PORT + _i + 10000 ))")
  done
  US_LAST_PORT="${US_PORTS[$(( US_NODES - 1 ))]}"
  # redis-cli and psql log in as the admin / superuser, over TLS, the server's name checked.
  local RCLI_OPTIONS=(--tls --cacert "${SECURE_CA}" --user admin) RCLI_AUTH=""
  [[ ! -s "$(secret_file redis-admin)" ]] || RCLI_AUTH="$(secret redis-admin)"
  local -x PGSSLMODE=verify-full PGSSLROOTCERT="${SECURE_CA}" PGPASSFILE="${SECURE_PGPASS}"
  local POSTGRES_PORT="${SECURE_POSTGRES_PORT}"
  local POSTGRES_DIR="${SECURE_DIR}/postgres" POSTGRES_DATA="${SECURE_DIR}/postgres/data"
  local POSTGRES_LOG="${SECURE_DIR}/logs/postgres.log"
  # Its mirrored topology (up --secure --mirrored); no Connect worker here.
  local MIRROR_MARKER="${SECURE_DIR}/run/mirrored" CONNECT_MARKER="${SECURE_DIR}/run/debezium"
  local MIRROR_DIR="${SECURE_DIR}/mirrored" MIRROR_CLUSTER=in_secure_region
  local MM2_CONFIG_WRITER=write_secure_mm2_config MIRROR_LOGS=(kafka-us mm2-eu mm2-us)
  locate_postgres
  "$@"
}

# ---------------------------------------------------------------------------- secrets and certificates

secret_file() { printf '%s/%s\n' "${SECURE_SECRETS_DIR}" "$1"; }
secret() { tr -d '\n' <"$(secret_file "$1")"; }

# <service>-<user> of every user of the profile, one a line.
secure_users() {
  { printf 'admin\n'; secure_kafka_acl_calls | grep -o 'User:[A-Za-z0-9_.-]*' | cut -d: -f2; } \
    | sort -u | sed 's/^/kafka-/'
  { printf 'admin\nreplica\n'; awk '$1 == "user" { print $2 }' "${SECURE_REDIS_ACLS}"; } \
    | sort -u | sed 's/^/redis-/'
  printf 'postgres-%s\n' "${SECURE_POSTGRES_USERS[@]}"
}

# A password per user, made once (kept while the data that knows it is kept; `down --secure
# --purge` deletes both). Hex: safe inside JSON, JAAS and SQL quotes.
ensure_secure_secrets() {
  local name file
  mkdir -p -m 0700 "${SECURE_SECRETS_DIR}"
  chmod 0700 "${SECURE_SECRETS_DIR}"
  for name in $(secure_users); do
    file="$(secret_file "${name}")"
    [[ -s "${file}" ]] && continue
    (umask 077; openssl rand -hex 24 >"${file}") || die "openssl rand failed for ${file}"
  done
  (umask 077
   for name in "${SECURE_POSTGRES_USERS[@]}"; do
     printf '127.0.0.1:%s:*:%s:%s\n' "${SECURE_POSTGRES_PORT}" "${name}" "$(secret "postgres-${name}")"
   done >"${SECURE_PGPASS}")
  RCLI_AUTH="$(secret redis-admin)"
}

secure_openssl() {
  openssl "$@" >>"${LOG_DIR}/openssl.log" 2>&1 || die "openssl $1 failed; see ${LOG_DIR}/openssl.log"
}

# A local CA and a server certificate for localhost and 127.0.0.1 signed by it (EC P-256 keys,
# PKCS#8 PEM as Kafka's PEM keystore reads them), made when missing. Certificates that expire
# within a day are made again, but only while nothing runs on the old ones.
ensure_secure_certificates() {
  if [[ -s "${SECURE_CA}" && -s "${SECURE_SERVER_CERT}" && -s "${SECURE_SERVER_BUNDLE}" ]] \
      && openssl x509 -checkend 86400 -noout -in "${SECURE_SERVER_CERT}" >/dev/null 2>&1; then
    return 0
  fi
  if [[ -s "${SECURE_CA}" ]] && secure_anything_running; then
    die "the secure profile's certificates in ${SECURE_CERTS_DIR} expire within a day: run down --secure, then up --secure"
  fi
  log "making a local CA and a server certificate for localhost, 127.0.0.1 in ${SECURE_CERTS_DIR} (valid ${SECURE_CERT_DAYS} days)"
  rm -rf "${SECURE_CERTS_DIR}"
  mkdir -p -m 0700 "${SECURE_CERTS_DIR}"
  (
    umask 077
    cd "${SECURE_CERTS_DIR}" || exit 1
    secure_openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca-key.pem
    secure_openssl req -x509 -new -key ca-key.pem -out ca.pem -days "${SECURE_CERT_DAYS}" \
      -subj "/CN=invalidator local stack CA" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    secure_openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out server-key.pem
    secure_openssl req -new -key server-key.pem -out server.csr -subj /CN=localhost
    printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=critical,CA:FALSE" \
      "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth,clientAuth" >server.ext
    # The Redis Cluster's nodes also present it to each other as clients (clientAuth).
    secure_openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
      -days "${SECURE_CERT_DAYS}" -extfile server.ext -out server.pem
    cat server-key.pem server.pem >server-bundle.pem
    rm -f server.csr server.ext
  ) || die "making the secure profile's certificates failed; see ${LOG_DIR}/openssl.log"
  chmod 0755 "${SECURE_CERTS_DIR}"
  chmod 0644 "${SECURE_CA}" "${SECURE_SERVER_CERT}"
}

# ---------------------------------------------------------------------------- kafka (SASL_SSL)

write_secure_kafka_config() {
  local node="$1" jaas
  jaas="org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"$(secret kafka-admin)\";"
  mkdir -p "$(kafka_node_dir "${node}")"
  (umask 077; cat >"$(kafka_node_config "${node}")" <<EOF
# Generated by deploy/local/stack.sh (up --secure); rewritten on every start. Holds the admin's
# password (0600).
process.roles=broker,controller
node.id=${node}
controller.quorum.voters=${node}@127.0.0.1:${KAFKA_CONTROLLER_PORT}
listeners=SASL_SSL://127.0.0.1:${KAFKA_PORT},CONTROLLER://127.0.0.1:${KAFKA_CONTROLLER_PORT}
advertised.listeners=SASL_SSL://127.0.0.1:${KAFKA_PORT}
# The controller listener is the broker's own, on the loopback only, over TLS with a client
# certificate: the server's own (CN=localhost), so only a holder of its key reaches the controller.
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SSL
listener.name.controller.ssl.client.auth=required
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_SSL
sasl.enabled.mechanisms=${SECURE_KAFKA_MECHANISM}
sasl.mechanism.inter.broker.protocol=${SECURE_KAFKA_MECHANISM}
listener.name.sasl_ssl.${SECURE_KAFKA_MECHANISM,,}.sasl.jaas.config=${jaas}
ssl.keystore.type=PEM
ssl.keystore.location=${SECURE_SERVER_BUNDLE}
ssl.truststore.type=PEM
ssl.truststore.location=${SECURE_CA}
ssl.client.auth=none
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:CN=localhost
log.dirs=$(kafka_node_data "${node}")
num.partitions=6
auto.create.topics.enable=false
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
  )
}

write_secure_kafka_admin_config() {
  local jaas
  jaas="org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"$(secret kafka-admin)\";"
  mkdir -p "${KAFKA_DIR}"
  # The CLI tools log in as admin, trusting the CA (the server's name checked). A TLS handshake
  # and a SCRAM login per tool JVM on a loaded 2-core host take seconds: longer timeouts than
  # the plaintext stack's. Holds the admin's password (0600).
  (umask 077; cat >"${KAFKA_ADMIN_CONFIG}" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=${SECURE_KAFKA_MECHANISM}
sasl.jaas.config=${jaas}
ssl.truststore.type=PEM
ssl.truststore.location=${SECURE_CA}
request.timeout.ms=20000
default.api.timeout.ms=40000
EOF
  )
}

# The SCRAM users exist from the start: written into the storage when it is formatted. The
# tool takes them as arguments only, so they go in a 0600 argument file the java launcher
# expands (`java @file`, the main class included: it expands nothing after the main class),
# never on the command line where `ps` would show them. The tool's output may echo its
# arguments: it is kept out of the logs.
format_secure_kafka_storage() {
  local node="$1" cluster_id user users=() output arguments status=0
  [[ -f "$(kafka_node_data "${node}")/meta.properties" ]] && return 0
  cluster_id="$(kafka_tool kafka.tools.StorageTool random-uuid 2>>"${KAFKA_TOOLS_LOG}")" \
    || die "Kafka StorageTool random-uuid failed; see ${KAFKA_TOOLS_LOG}"
  mapfile -t users < <(secure_users | sed -n 's/^kafka-//p')
  arguments="$(secret_file kafka-format.args)"
  (
    umask 077
    printf '%s\n' kafka.tools.StorageTool format -t "${cluster_id}" -c "$(kafka_node_config "${node}")"
    for user in "${users[@]}"; do
      printf -- '--add-scram\n%s=[name=%s,password=%s]\n' \
        "${SECURE_KAFKA_MECHANISM}" "${user}" "$(secret "kafka-${user}")"
    done
  ) >"${arguments}"
  log "formatting the secure kafka storage (cluster id ${cluster_id}; SCRAM users ${users[*]})"
  mkdir -p "$(kafka_node_data "${node}")"
  rm -f "${KAFKA_DIR}/acls.applied"
  output="$(kafka_tool "@${arguments}" 2>&1)" || status=$?
  rm -f "${arguments}"
  ((status == 0)) \
    || die "Kafka storage format failed (${#output} bytes of output withheld: they may hold passwords)"
  printf '%s\n' "${users[@]}" >"${KAFKA_DIR}/scram.users"
}

# The kafka-acls.sh calls of deploy/kafka-acls.conf, one a line.
secure_kafka_acl_calls() { sed -e '/^[[:space:]]*#/d' -e '/^[[:space:]]*$/d' "${SECURE_KAFKA_ACLS}"; }

# Every call of deploy/kafka-acls.conf, in parallel (one JVM each), once per storage and again
# whenever the file changes (adding an ACL that exists is a no-op). What failed is tried again,
# as in ensure_topics (a tool's TLS and SCRAM login may time out on a loaded host).
ensure_secure_kafka_acls() {
  local marker="${KAFKA_DIR}/acls.applied" digest line pending=() failed pids attempt i
  digest="$(sha256sum "${SECURE_KAFKA_ACLS}" | cut -c 1-64)"
  [[ "$(cat "${marker}" 2>/dev/null)" == "${digest}" ]] && { log "kafka ACLs present"; return 0; }
  log "adding the ACLs of ${SECURE_KAFKA_ACLS}"
  mapfile -t pending < <(secure_kafka_acl_calls)
  for (( attempt = 1; attempt <= TOPIC_CREATE_ATTEMPTS; attempt++ )); do
    pids=()
    for line in "${pending[@]}"; do
      local call=()
      read -r -a call <<<"${line}"
      kafka_tool org.apache.kafka.tools.AclCommand --bootstrap-server "$(kafka_bootstrap)" \
        --command-config "${KAFKA_ADMIN_CONFIG}" "${call[@]}" >>"${KAFKA_TOOLS_LOG}" 2>&1 &
      pids+=("$!")
    done
    failed=()
    for i in "${!pids[@]}"; do wait "${pids[$i]}" || failed+=("${pending[$i]}"); done
    (( ${#failed[@]} )) || break
    log "adding ${#failed[@]} ACL call(s) failed (attempt ${attempt} of ${TOPIC_CREATE_ATTEMPTS})"
    pending=("${failed[@]}")
  done
  (( ${#failed[@]} == 0 )) || die "adding the Kafka ACLs failed; see ${KAFKA_TOOLS_LOG}"
  printf '%s\n' "${digest}" >"${marker}"
}

# ---------------------------------------------------------------------------- redis (TLS, ACL users)

# redis.conf user lines: the default user off, admin with every right, the users of
# deploy/redis-acl.conf with their passwords, and `replica`, who may only replicate.
secure_redis_users() {
  local line name
  printf 'user default off\n'
  printf 'user admin on >%s ~* &* +@all\n' "$(secret redis-admin)"
  while IFS= read -r line; do
    [[ "${line}" == "user "* ]] || continue
    read -r _ name _ <<<"${line}"
    printf '%s\n' "${line/ on / on >$(secret "redis-${name}") }"
  done <"${SECURE_REDIS_ACLS}"
  printf 'user replica on >%s +psync +replconf +ping\n' "$(secret redis-replica)"
}

# As write_redis_config, TLS only: `port 0`; a cluster node's bus and replication over TLS too.
write_secure_redis_config() {
  local conf="$1" port="$2" cluster="$3" dir="$4" pid_file="$5" log_file="$6"
  (umask 077; {
    cat <<EOF
# Generated by deploy/local/stack.sh (up --secure). Holds passwords (0600).
port 0
tls-port ${port}
tls-cert-file ${SECURE_SERVER_CERT}
tls-key-file ${SECURE_SERVER_KEY}
tls-ca-cert-file ${SECURE_CA}
tls-auth-clients no
bind 127.0.0.1
protected-mode no
daemonize yes
pidfile "${pid_file}"
logfile "${log_file}"
dir "${dir}"
save ""
appendonly no
EOF
    secure_redis_users
    if [[ "${cluster}" == "yes" ]]; then
      cat <<EOF
cluster-enabled yes
cluster-config-file "${dir}/nodes.conf"
cluster-node-timeout 5000
cluster-port $(( port + 10000 ))
tls-cluster yes
tls-replication yes
masteruser replica
masterauth $(secret redis-replica)
EOF
    fi
  } >"${conf}")
}

# ---------------------------------------------------------------------------- postgres (TLS, scram)

# The server's certificate and key, where the server's user may read them (the key 0600).
install_secure_postgres_certificate() {
  local dir="${POSTGRES_DIR}/tls"
  mkdir -p -m 0700 "${dir}"
  cp "${SECURE_SERVER_CERT}" "${dir}/server.crt"
  cp "${SECURE_SERVER_KEY}" "${dir}/server.key"
  chmod 0600 "${dir}/server.crt" "${dir}/server.key"
  if [[ "$(id -u)" == "0" ]]; then chown -R "${POSTGRES_OS_USER}:" "${dir}"; fi
}

# As init_postgres_data, with the superuser's password (scram-sha-256) and a pg_hba.conf of
# hostssl lines only: a plaintext connection is refused.
init_secure_postgres_data() {
  local tmp="${POSTGRES_DATA}.init" pwfile="${POSTGRES_DIR}/initdb-password"
  [[ -f "${POSTGRES_DATA}/PG_VERSION" ]] && return 0
  rm -rf "${tmp}"
  log "initialising the secure postgres data in ${POSTGRES_DATA}"
  (umask 077; secret postgres-postgres >"${pwfile}")
  if [[ "$(id -u)" == "0" ]]; then chown "${POSTGRES_OS_USER}:" "${pwfile}"; fi
  pg_as "${POSTGRES_BINDIR}/initdb" -D "${tmp}" -U postgres -E UTF8 --no-locale \
    --auth=scram-sha-256 --pwfile="${pwfile}" --no-sync >>"${POSTGRES_LOG}" 2>&1 \
    || { rm -f "${pwfile}"; die "initdb failed; see ${POSTGRES_LOG}"; }
  rm -f "${pwfile}"
  cat >"${tmp}/pg_hba.conf" <<'HBA'
# Written by deploy/local/stack.sh (up --secure): TLS and a password, from 127.0.0.1 only. No
# `host` line, so a plaintext connection is refused.
hostssl  all  all  127.0.0.1/32  scram-sha-256
HBA
  mv "${tmp}" "${POSTGRES_DATA}"
}

start_secure_postgres() {
  local pid
  pid="$(postgres_pid)"
  if [[ -n "${pid}" ]]; then
    log "postgres already running (pid ${pid})"
    return 0
  fi
  port_open "${POSTGRES_PORT}" \
    && die "postgres: port ${POSTGRES_PORT} is already in use by another process (set SECURE_POSTGRES_PORT)"
  install_secure_postgres_certificate
  init_secure_postgres_data
  rm -f "${POSTGRES_DATA}/postmaster.pid"
  log "starting postgres (ssl=on) on 127.0.0.1:${POSTGRES_PORT} (log: ${POSTGRES_LOG})"
  pg_as "${POSTGRES_BINDIR}/pg_ctl" start --no-wait -D "${POSTGRES_DATA}" -l "${POSTGRES_LOG}" \
    -o "-c listen_addresses=127.0.0.1 -c port=${POSTGRES_PORT} -c unix_socket_directories='' -c ssl=on -c ssl_cert_file=${POSTGRES_DIR}/tls/server.crt -c ssl_key_file=${POSTGRES_DIR}/tls/server.key -c password_encryption=scram-sha-256" \
    </dev/null >>"${POSTGRES_LOG}" 2>&1 9>&- || die "pg_ctl start failed; see ${POSTGRES_LOG}"
}

# Wait until it answers (over TLS, as the superuser), then give the relay's user its password
# (from stdin: never on a command line) and create the outbox database it owns.
wait_secure_postgres() {
  local deadline=$(( $(now) + POSTGRES_TIMEOUT )) user="${SECURE_POSTGRES_USER}"
  until [[ "$(pg_sql postgres 'SELECT 1' 2>/dev/null)" == 1 ]]; do
    (( $(now) < deadline )) \
      || die "postgres did not answer over TLS on 127.0.0.1:${POSTGRES_PORT} within ${POSTGRES_TIMEOUT}s; see ${POSTGRES_LOG}"
    sleep 0.1
  done
  if [[ "$(pg_sql postgres "SELECT 1 FROM pg_roles WHERE rolname = '${user}'")" != 1 ]]; then
    log "creating the postgres user ${user}"
    printf "CREATE ROLE %s LOGIN PASSWORD '%s';\n" "${user}" "$(secret "postgres-${user}")" \
      | PGCONNECT_TIMEOUT=5 timeout 10 "${POSTGRES_BINDIR}/psql" -h 127.0.0.1 -p "${POSTGRES_PORT}" \
        -U postgres -d postgres -X -q -v ON_ERROR_STOP=1 -f - 2>>"${POSTGRES_LOG}" \
      || die "creating the postgres user ${user} failed; see ${POSTGRES_LOG}"
  fi
  if [[ "$(pg_sql postgres "SELECT 1 FROM pg_database WHERE datname = '${POSTGRES_DATABASE}'")" != 1 ]]; then
    log "creating database ${POSTGRES_DATABASE} (owner ${user})"
    pg_sql postgres "CREATE DATABASE ${POSTGRES_DATABASE} OWNER ${user}" 2>>"${POSTGRES_LOG}" \
      || die "creating database ${POSTGRES_DATABASE} failed; see ${POSTGRES_LOG}"
  fi
}

# ---------------------------------------------------------------------------- mirrored (SASL_SSL)

# in_secure_region <eu|us> <command> [args]: run a kafka function on that region's cluster of the
# secure mirrored topology: eu's is the profile's kafka, us's kafka-us (bound as locals, as
# in_cluster does for the plaintext one). Called inside in_secure.
in_secure_region() {
  local region="$1"; shift
  [[ "${region}" == us ]] || { "$@"; return; }
  local KAFKA_NAME=kafka-us KAFKA_BROKERS=1 KAFKA_TOPICS=""
  local KAFKA_PORT="${SECURE_MIRROR_US_KAFKA_PORT}" KAFKA_CONTROLLER_PORT="${SECURE_MIRROR_US_CONTROLLER_PORT}"
  local KAFKA_DIR="${MIRROR_DIR}/kafka-us"
  local KAFKA_ADMIN_CONFIG="${MIRROR_DIR}/kafka-us/admin.properties"
  local KAFKA_BROKERS_FILE="${RUN_DIR}/kafka-us.brokers"
  "$@"
}

secure_region_bootstrap() { in_secure_region "$1" kafka_bootstrap; }

# The file the file config provider reads MirrorMaker's password from (key `password`, 0600).
secure_mm2_password_file() { printf '%s/kafka-%s.properties\n' "${SECURE_SECRETS_DIR}" "${SECURE_MIRROR_USER}"; }

# MirrorMaker's login to each cluster, under the cluster's alias: every client of a herder (its
# worker, its connectors' producers, consumers and admins) inherits it.
secure_mm2_login_properties() {
  local region jaas
  jaas="org.apache.kafka.common.security.scram.ScramLoginModule required username=\"${SECURE_MIRROR_USER}\" password=\"\${file:$(secure_mm2_password_file):password}\";"
  for region in "${MIRROR_REGIONS[@]}"; do
    printf '%s.bootstrap.servers = %s\n' "${region}" "$(secure_region_bootstrap "${region}")"
    printf '%s.security.protocol = SASL_SSL\n' "${region}"
    printf '%s.sasl.mechanism = %s\n' "${region}" "${SECURE_KAFKA_MECHANISM}"
    printf '%s.sasl.jaas.config = %s\n' "${region}" "${jaas}"
    printf '%s.ssl.truststore.type = PEM\n' "${region}"
    printf '%s.ssl.truststore.location = %s\n' "${region}" "${SECURE_CA}"
  done
}

# As write_mm2_config, both clusters directly over SASL_SSL as `mirror`. The properties name the
# password's file only: the provider resolves it for the worker, and the connectors' configs (in
# mm2-configs.<source>.internal) keep the reference, resolved by the worker when a task starts.
write_secure_mm2_config() {
  local target="$1" source
  source="$(other_region "${target}")"
  mkdir -p "${MIRROR_DIR}"
  (umask 077; printf 'password=%s\n' "$(secret "kafka-${SECURE_MIRROR_USER}")" >"$(secure_mm2_password_file)")
  (umask 077; {
    cat <<EOF
# Generated by deploy/local/stack.sh (up --secure --mirrored); rewritten on every start of
# mm2-${target}. MirrorMaker 2 (Kafka ${KAFKA_VERSION}), dedicated mode, run with --clusters ${target}:
# only the flow ${source}->${target}, logged in to both clusters as ${SECURE_MIRROR_USER}.
clusters = eu, us
config.providers = file
config.providers.file.class = org.apache.kafka.common.config.provider.FileConfigProvider
EOF
    secure_mm2_login_properties
    cat <<EOF
# The clusters' ACLs are deploy/kafka-acls.conf's: none copied (mirror may not describe ACLs).
sync.topic.acls.enabled = false
EOF
    mm2_flow_properties "${target}"
  } >"$(mm2_config "${target}")")
}

# Storage formatted before the principal `mirror` was in deploy/kafka-acls.conf lacks its SCRAM
# user (users are written at format time only).
check_secure_mirror_user() {
  grep -qxF "${SECURE_MIRROR_USER}" "${KAFKA_DIR}/scram.users" 2>/dev/null \
    || die "${KAFKA_NAME}'s storage has no SCRAM user ${SECURE_MIRROR_USER} (formatted before it was added): run down --secure --purge, then up --secure --mirrored"
}

# us's cluster answers, has the topics, the ACLs and a group coordinator.
wait_secure_cluster() {
  write_secure_kafka_admin_config
  wait_kafka
  ensure_topics
  ensure_secure_kafka_acls
  wait_group_coordinator
}

start_secure_mirrored_cluster() {
  ensure_mirror_libs
  mkdir -p "${MIRROR_DIR}"
  in_secure_region us start_kafka
}

finish_secure_mirrored() {
  local region
  in_secure_region us wait_secure_cluster
  for region in "${MIRROR_REGIONS[@]}"; do in_secure_region "${region}" check_secure_mirror_user; done
  for region in "${MIRROR_REGIONS[@]}"; do start_mm2 "${region}"; done
  wait_mirrors
  touch "${MIRROR_MARKER}"
}

stop_secure_mirrored() {
  local region
  for region in "${MIRROR_REGIONS[@]}"; do stop_mm2 "${region}"; done
  in_secure_region us stop_kafka
  rm -f "${MIRROR_MARKER}"
}

secure_mirrored_status() {
  local rc=0 region pid topics name missing
  pid="$(in_secure_region us kafka_pid 1)"
  if [[ -n "${pid}" ]] && port_open "${SECURE_MIRROR_US_KAFKA_PORT}"; then
    printf 'kafka-us  up   127.0.0.1:%s SASL_SSL (SCRAM-SHA-512, ACLs), pid %s\n' "${SECURE_MIRROR_US_KAFKA_PORT}" "${pid}"
  else
    printf 'kafka-us  down 127.0.0.1:%s SASL_SSL (log: %s)\n' "${SECURE_MIRROR_US_KAFKA_PORT}" "${LOG_DIR}/kafka-us.log"
    rc=1
  fi
  for region in "${MIRROR_REGIONS[@]}"; do
    missing=()
    if topics="$(in_secure_region "${region}" topics_cmd --list 2>>"${KAFKA_TOOLS_LOG}")"; then
      while read -r name _; do
        grep -qxF "${name}" <<<"${topics}" || missing+=("${name}")
      done < <(read_topics; mirrored_topics "${region}")
      if (( ${#missing[@]} )); then
        printf 'mirror    DEGRADED, missing on %s: %s\n' "${region}" "${missing[*]}"
        rc=1
      else
        printf 'mirror    %s topics ok (mirrored in: %s)\n' "${region}" "$(mirrored_topics "${region}" | paste -sd, -)"
      fi
    else
      printf 'mirror    no answer from %s (%s)\n' "${region}" "$(secure_region_bootstrap "${region}")"
      rc=1
    fi
  done
  for region in "${MIRROR_REGIONS[@]}"; do
    pid="$(mm2_pid "${region}")"
    if [[ -n "${pid}" ]]; then
      printf '%-9s up   %s->%s as %s, pid %s\n' "mm2-${region}" "$(other_region "${region}")" "${region}" "${SECURE_MIRROR_USER}" "${pid}"
    else
      printf '%-9s down %s->%s (log: %s)\n' "mm2-${region}" "$(other_region "${region}")" "${region}" "$(mm2_log "${region}")"
      rc=1
    fi
  done
  return "${rc}"
}

# Each region's cluster: a region's invalidator reads its own, with the INVALIDATOR_KAFKA__
# login of print_secure_env and the other region as INVALIDATOR_MIRRORED_FROM.
print_secure_mirror_env() {
  printf 'export MIRROR_KAFKA_EU=%s\n' "$(secure_region_bootstrap eu)"
  printf 'export MIRROR_KAFKA_US=%s\n' "$(secure_region_bootstrap us)"
}

# ---------------------------------------------------------------------------- commands (--secure)

# True when a process of the secure profile (or anything on its ports) runs.
secure_anything_running() {
  [[ -n "$(kafka_pid 1)" || -n "$(postgres_pid)" ]] || port_open "${REDIS_EU_PORT}" \
    || port_open "${REDIS_US_PORT}"
}

cmd_up_secure() {
  local t0 port mirrored=0
  while (( $# )); do
    case "$1" in
      --mirrored) mirrored=1; shift ;;
      *) usage; exit 2 ;;
    esac
  done
  t0="$(now)"
  take_lock
  [[ -f "${TOPICS_FILE}" ]] || die "topics file ${TOPICS_FILE} not found"
  command -v openssl >/dev/null || die "openssl not found: install the openssl package"
  require_redis
  require_postgres
  check_bus_ports_free
  prepare_postgres_dirs
  ensure_secure_secrets
  ensure_secure_certificates
  write_secure_kafka_admin_config
  start_kafka
  (( ! mirrored )) || start_secure_mirrored_cluster
  start_secure_postgres
  start_redis eu "${REDIS_EU_PORT}" no
  reset_outdated_us_cluster
  for port in "${US_PORTS[@]}"; do start_redis "us-${port}" "${port}" yes; done
  ensure_us_cluster
  wait_secure_postgres
  wait_kafka
  ensure_topics
  ensure_secure_kafka_acls
  wait_group_coordinator
  (( ! mirrored )) || finish_secure_mirrored
  log "secure profile up in $(( $(now) - t0 ))s"
  print_secure_env
  (( ! mirrored )) || print_secure_mirror_env
}

cmd_down_secure() {
  local purge=0 port mirrored_only=0
  while (( $# )); do
    case "$1" in
      --purge) purge=1; shift ;;
      --mirrored) mirrored_only=1; shift ;;
      *) usage; exit 2 ;;
    esac
  done
  take_lock
  stop_secure_mirrored
  if (( mirrored_only )); then
    if (( purge )); then
      log "purging the secure mirrored topology's data under ${MIRROR_DIR}"
      rm -rf "${MIRROR_DIR}"
    fi
    log "secure mirrored topology down"
    return 0
  fi
  stop_kafka
  stop_redis eu "${REDIS_EU_PORT}"
  for port in "${US_PORTS[@]}"; do stop_redis "us-${port}" "${port}"; done
  stop_postgres
  if (( purge )); then
    log "purging the secure profile: ${SECURE_DIR} (certificates and passwords too)"
    [[ "${POSTGRES_DIR}" == "${SECURE_DIR}/"* ]] || rm -rf "${POSTGRES_DIR}"
    rm -rf "${SECURE_DIR}"
    return 0
  fi
  log "secure profile down"
}

cmd_status_secure() {
  local rc=0 pid topics name missing=() port bad=()
  pid="$(kafka_pid 1)"
  if [[ -n "${pid}" ]] && port_open "${KAFKA_PORT}" && kafka_libs_present \
      && topics="$(topics_cmd --list 2>>"${KAFKA_TOOLS_LOG}")"; then
    while read -r name _; do
      grep -qxF "${name}" <<<"${topics}" || missing+=("${name}")
    done < <(read_topics)
    if (( ${#missing[@]} )); then
      printf 'kafka     DEGRADED 127.0.0.1:%s SASL_SSL, missing topics: %s\n' "${KAFKA_PORT}" "${missing[*]}"
      rc=1
    else
      printf 'kafka     up   127.0.0.1:%s SASL_SSL (SCRAM-SHA-512, ACLs), topics ok, pid %s\n' "${KAFKA_PORT}" "${pid}"
    fi
  else
    printf 'kafka     down 127.0.0.1:%s SASL_SSL (log: %s)\n' "${KAFKA_PORT}" "$(kafka_node_log 1)"
    rc=1
  fi
  if redis_ping "${REDIS_EU_PORT}"; then
    printf 'redis-eu  up   127.0.0.1:%s TLS\n' "${REDIS_EU_PORT}"
  else
    printf 'redis-eu  down 127.0.0.1:%s TLS (log: %s)\n' "${REDIS_EU_PORT}" "$(redis_log eu)"
    rc=1
  fi
  for port in "${US_PORTS[@]}"; do cluster_ok "${port}" || bad+=("${port}"); done
  if (( ${#bad[@]} )); then
    printf 'redis-us  down 127.0.0.1:%s-%s TLS (not ok: %s; logs: %s/redis-us-*.log)\n' \
      "${US_PORTS[0]}" "${US_LAST_PORT}" "${bad[*]}" "${LOG_DIR}"
    rc=1
  elif us_cluster_complete; then
    printf 'redis-us  up   127.0.0.1:%s-%s TLS, cluster_state:ok, 3 masters + 3 replicas linked\n' \
      "${US_PORTS[0]}" "${US_LAST_PORT}"
  else
    printf 'redis-us  DEGRADED 127.0.0.1:%s-%s TLS, a master lacks its replica\n' "${US_PORTS[0]}" "${US_LAST_PORT}"
    rc=1
  fi
  if find_postgres_bindir && [[ "$(pg_sql "${POSTGRES_DATABASE}" 'SELECT 1' 2>/dev/null)" == 1 ]]; then
    printf 'postgres  up   127.0.0.1:%s TLS, database %s pid %s\n' \
      "${POSTGRES_PORT}" "${POSTGRES_DATABASE}" "$(postgres_pid)"
  else
    printf 'postgres  down 127.0.0.1:%s TLS (log: %s)\n' "${POSTGRES_PORT}" "${POSTGRES_LOG}"
    rc=1
  fi
  if [[ -f "${MIRROR_MARKER}" ]]; then secure_mirrored_status || rc=1; fi
  return "${rc}"
}

# `"$(cat <file>)"` for an export line: the password stays in its file until the line is
# evaluated, so it never shows in this script's output.
password_from() { printf '$(cat %s)' "$(secret_file "$1")"; }

# Each region's targets as the JSON of INVALIDATOR_REGIONS, logged in as Redis user $1, with
# its password read from its file when the line is evaluated (inside double quotes).
secure_regions_json() {
  local user="$1" login
  login="\\\"username\\\":\\\"${user}\\\",\\\"password\\\":\\\"$(password_from "redis-${user}")\\\",\\\"tls\\\":{\\\"ca_file\\\":\\\"${SECURE_CA}\\\"}"
  printf '{\\"eu\\":[{\\"name\\":\\"eu-standalone\\",\\"url\\":\\"rediss://127.0.0.1:%s/0\\",\\"cluster\\":false,%s}],' \
    "${SECURE_REDIS_EU_PORT}" "${login}"
  printf '\\"us\\":[{\\"name\\":\\"us-cluster\\",\\"url\\":\\"rediss://127.0.0.1:%s\\",\\"cluster\\":true,\\"min_replicas_acked\\":1,\\"replicas_timeout_ms\\":1000,%s}]}' \
    "${SECURE_REDIS_US_PORT}" "${login}"
}

# One client's Kafka settings under prefix $1 (e.g. INVALIDATOR_KAFKA__), as Kafka user $2.
print_secure_kafka_env() {
  local prefix="$1" user="$2"
  printf 'export %sBOOTSTRAP_SERVERS=127.0.0.1:%s\n' "${prefix}" "${SECURE_KAFKA_PORT}"
  printf 'export %sSECURITY_PROTOCOL=SASL_SSL\n' "${prefix}"
  printf 'export %sSASL_MECHANISM=%s\n' "${prefix}" "${SECURE_KAFKA_MECHANISM}"
  printf 'export %sSASL_USERNAME=%s\n' "${prefix}" "${user}"
  printf 'export %sSASL_PASSWORD="%s"\n' "${prefix}" "$(password_from "kafka-${user}")"
  printf 'export %sTLS__CA_FILE=%s\n' "${prefix}" "${SECURE_CA}"
}

# The export lines of every client's settings on the secure profile: the invalidator (and the
# operator commands), the outbox relay, a service's EventPublisher (PUBLISHER_KAFKA__*, the
# fields of contracts.KafkaConnection) and CacheClient (CACHE_REGIONS, RedisTargets as in
# INVALIDATOR_REGIONS). Passwords are read from their files when the lines are evaluated.
print_secure_env() {
  print_secure_kafka_env INVALIDATOR_KAFKA__ invalidator
  printf 'export INVALIDATOR_REGIONS="%s"\n' "$(secure_regions_json invalidator)"
  printf 'export OUTBOX_DATABASE_URL=postgresql+asyncpg://%s@127.0.0.1:%s/%s\n' \
    "${SECURE_POSTGRES_USER}" "${SECURE_POSTGRES_PORT}" "${POSTGRES_DATABASE}"
  printf 'export OUTBOX_DATABASE_PASSWORD="%s"\n' "$(password_from "postgres-${SECURE_POSTGRES_USER}")"
  printf 'export OUTBOX_DATABASE_TLS__CA_FILE=%s\n' "${SECURE_CA}"
  print_secure_kafka_env OUTBOX_KAFKA__ relay
  print_secure_kafka_env PUBLISHER_KAFKA__ publisher
  printf 'export CACHE_REGIONS="%s"\n' "$(secure_regions_json cache)"
}
