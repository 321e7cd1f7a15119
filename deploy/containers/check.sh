#!/usr/bin/env bash
# The container checks (`make containers-check`), on a machine with podman and no image
# registry. First the local images are built (deploy/containers/build-images.sh; kept when up to
# date), then the steps run in order, each printing one PASS/FAIL line with its duration:
#
#   smoke       each local image answers: Kafka starts from KAFKA_* variables and
#               kafka-topics.sh --list works, redis PING, postgres pg_isready and a psql query,
#               python3 -V
#   tests       the integration tests on containers: INVALIDATOR_TEST_STACK=containers pytest
#               tests/integration, with the local images and podman's Docker API (DOCKER_HOST,
#               TESTCONTAINERS_*; deploy/containers/podman-service.sh)
#   compose     docker-compose.yml end to end with podman-compose: up with the local images on
#               host ports 29xxx, both invalidators joined, one event purges its namespaces in
#               eu (standalone) and us (the Cluster), checked from inside the compose network by
#               deploy/containers/compose_check.py; always torn down (containers, volumes,
#               network), failed or not
#   compose-mirrored  the same with docker-compose.mirrored.yml over it: a Kafka cluster per
#               region (kafka, kafka-us), MirrorMaker 2 into each (mm2-eu, mm2-us), each
#               invalidator on its own cluster; the mirrored topics must appear in both
#               clusters, and one event published in eu's cluster and one in us's must both be
#               purged in both regions' Redis; always torn down
#   dockerfile  deploy/Dockerfile built FROM the local python image, `invalidator --help` runs
#               in it, as a user other than root
#
# Usage: deploy/containers/check.sh [images|smoke|tests|compose|compose-mirrored|dockerfile ...]
# (default: all; `images` alone builds the images only)
# Exit status 0 only when every step passed. Environment: PYTHON_BIN (<repo>/.venv/bin/python)
# and PYTEST_ARGS (its pytest arguments, default tests/integration) for the tests step,
# COMPOSE_PROJECT (invalidator-check), COMPOSE_MIRRORED_PROJECT (invalidator-check-mirrored),
# COMPOSE_MIRRORED_STOP (services of the mirrored project to stop before its check, to see the
# check fail: e.g. mm2-us), the compose host ports KAFKA_HOST_PORT (29092), KAFKA_US_HOST_PORT
# (29094), REDIS_EU_HOST_PORT (29379), REDIS_US_{1..6}_HOST_PORT (29001-29006), POSTGRES_HOST_PORT
# (29432), CONTAINERS_STATE_DIR (<repo>/.containers: logs under check/), and the image variables
# (KAFKA_IMAGE, REDIS_IMAGE, POSTGRES_IMAGE, PYTHON_IMAGE; default: local-images.env's).
# The podman service is stopped at the end if this script started it. Run as root.
set -uo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/containers/common.sh
. "${SCRIPT_DIR}/common.sh"
export CONTAINERS_STATE_DIR="${STATE_DIR}"
LOG_DIR="${STATE_DIR}/check"
PYTHON_BIN="${PYTHON_BIN:-${REPO_ROOT}/.venv/bin/python}"
COMPOSE_PROJECT="${COMPOSE_PROJECT:-invalidator-check}"
COMPOSE_MIRRORED_PROJECT="${COMPOSE_MIRRORED_PROJECT:-invalidator-check-mirrored}"
COMPOSE_MIRRORED_STOP="${COMPOSE_MIRRORED_STOP:-}"
ALL_STEPS=(smoke tests compose compose-mirrored dockerfile)
SMOKE_TIMEOUT_S=90      # seconds for a smoke-checked service to answer
COMPOSE_RUN_TIMEOUT_S=420  # seconds for the one-shot services to finish and the long-running ones to run
DOCKERFILE_IMAGE=localhost/invalidator:containers-check

export KAFKA_HOST_PORT="${KAFKA_HOST_PORT:-29092}"
export KAFKA_US_HOST_PORT="${KAFKA_US_HOST_PORT:-29094}"
export REDIS_EU_HOST_PORT="${REDIS_EU_HOST_PORT:-29379}"
export POSTGRES_HOST_PORT="${POSTGRES_HOST_PORT:-29432}"
for _n in 1 2 3 4 5 6; do
  _var="REDIS_US_${_n}_HOST_PORT"
  export "${_var}=${!_var:-2900${_n}}"
done

# The images: those of local-images.env, unless the environment names others.
while IFS='=' read -r _name _value; do
  [[ "${_name}" =~ ^[A-Z_]+$ && -z "${!_name:-}" ]] && export "${_name}=${_value}"
done <"${SCRIPT_DIR}/local-images.env"

log() { printf '[check] %s\n' "$*" >&2; }

usage() {
  sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
}

# Poll "$@" until it succeeds; 1 after $1 seconds.
wait_for() {
  local timeout_s="$1" deadline
  shift
  deadline=$(( $(date +%s) + timeout_s ))
  until "$@"; do
    (( $(date +%s) < deadline )) || return 1
    sleep 0.5
  done
}

# ------------------------------------------------------------------------------------ smoke

# Containers this script starts carry this label, so they are found and removed whatever happens.
SMOKE_LABEL="org.invalidator.check=smoke-$$"

remove_smoke_containers() {
  podman ps -aq --filter "label=${SMOKE_LABEL}" | xargs -r podman rm -f -v >/dev/null 2>&1 || true
}

smoke_kafka() {
  local name="invalidator-check-kafka-$$"
  podman run -d --name "${name}" --label "${SMOKE_LABEL}" \
    -e CLUSTER_ID=4n1UGRFLQDiKp134L_wQiQ -e KAFKA_NODE_ID=1 \
    -e KAFKA_PROCESS_ROLES=broker,controller -e KAFKA_CONTROLLER_QUORUM_VOTERS=1@localhost:9093 \
    -e KAFKA_LISTENERS=PLAINTEXT://:9092,CONTROLLER://:9093 \
    -e KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://localhost:9092 \
    -e KAFKA_LISTENER_SECURITY_PROTOCOL_MAP=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT \
    -e KAFKA_CONTROLLER_LISTENER_NAMES=CONTROLLER -e KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR=1 \
    -e KAFKA_HEAP_OPTS='-Xms128m -Xmx512m' "${KAFKA_IMAGE}" >/dev/null || return 1
  if ! wait_for "${SMOKE_TIMEOUT_S}" podman exec "${name}" /opt/kafka/bin/kafka-topics.sh \
      --bootstrap-server localhost:9092 --list >/dev/null 2>&1; then
    log "kafka: kafka-topics.sh --list did not answer within ${SMOKE_TIMEOUT_S}s; its log:"
    podman logs --tail 30 "${name}" >&2
    return 1
  fi
  podman exec "${name}" grep -qx 'node.id=1' /opt/kafka/config/server.properties \
    || { log "kafka: KAFKA_NODE_ID did not become node.id=1"; return 1; }
  echo "kafka: broker started from KAFKA_* variables; kafka-topics.sh --list answers"
}

smoke_redis() {
  local name="invalidator-check-redis-$$"
  podman run -d --name "${name}" --label "${SMOKE_LABEL}" "${REDIS_IMAGE}" \
    redis-server --port 16379 --save '' >/dev/null || return 1
  wait_for "${SMOKE_TIMEOUT_S}" sh -c "[ \"\$(podman exec '${name}' redis-cli -p 16379 ping 2>/dev/null)\" = PONG ]" \
    || { log "redis: no PONG within ${SMOKE_TIMEOUT_S}s"; podman logs --tail 20 "${name}" >&2; return 1; }
  echo "redis: PING answered PONG"
}

smoke_postgres() {
  local name="invalidator-check-postgres-$$" answer
  podman run -d --name "${name}" --label "${SMOKE_LABEL}" -e POSTGRES_USER=postgres \
    -e POSTGRES_DB=outbox -e POSTGRES_HOST_AUTH_METHOD=trust "${POSTGRES_IMAGE}" >/dev/null || return 1
  wait_for "${SMOKE_TIMEOUT_S}" podman exec "${name}" pg_isready -h 127.0.0.1 -U postgres -d outbox >/dev/null \
    || { log "postgres: pg_isready failed for ${SMOKE_TIMEOUT_S}s"; podman logs --tail 20 "${name}" >&2; return 1; }
  answer="$(podman exec "${name}" psql -h 127.0.0.1 -U postgres -d outbox -Atc 'SELECT current_database()')"
  [[ "${answer}" == outbox ]] || { log "postgres: psql answered '${answer}', not outbox"; return 1; }
  echo "postgres: pg_isready ok; psql connects to database outbox"
}

smoke_python() {
  local version
  version="$(podman run --rm "${PYTHON_IMAGE}" python3 -V)" || return 1
  [[ "${version}" == "Python 3.11."* ]] || { log "python: python3 -V said '${version}'"; return 1; }
  echo "python: ${version}"
}

step_smoke() {
  local failed=0 check
  for check in smoke_kafka smoke_redis smoke_postgres smoke_python; do
    "${check}" || failed=1
  done
  remove_smoke_containers
  return "${failed}"
}

# ------------------------------------------------------------------------------------ tests

step_tests() {
  [[ -x "${PYTHON_BIN}" ]] || { log "${PYTHON_BIN} not found (make setup, or set PYTHON_BIN)"; return 1; }
  (
    eval "$(bash "${SCRIPT_DIR}/podman-service.sh" start)" || exit 1
    # PYTEST_ARGS is a list of pytest arguments: word splitting is meant.
    # shellcheck disable=SC2086
    cd "${REPO_ROOT}" && INVALIDATOR_TEST_STACK=containers "${PYTHON_BIN}" -m pytest \
      ${PYTEST_ARGS:-tests/integration}
  )
}

# ------------------------------------------------------------------------------------ compose

# The project, files and log name the compose functions act on: set by each compose step.
PROJECT="${COMPOSE_PROJECT}"
COMPOSE_FILES=(-f docker-compose.yml)
COMPOSE_LOG=compose

compose() {
  (cd "${REPO_ROOT}" && podman-compose -p "${PROJECT}" "${COMPOSE_FILES[@]}" "$@")
}

compose_container() { printf '%s_%s_1\n' "${PROJECT}" "$1"; }

container_state() { podman inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$1" 2>/dev/null; }

# compose_wait_started "ONE_SHOT..." "RUNNING...": until the one-shot services exited 0 and the
# others run; 1 at once when a one-shot service failed, or after COMPOSE_RUN_TIMEOUT_S.
compose_wait_started() {
  local deadline=$(( $(date +%s) + COMPOSE_RUN_TIMEOUT_S )) service state pending
  while :; do
    pending=()
    for service in $1; do
      state="$(container_state "$(compose_container "${service}")")"
      case "${state}" in
        "exited 0") ;;
        exited*) log "${service} failed (${state})"; return 1 ;;
        *) pending+=("${service}") ;;
      esac
    done
    for service in $2; do
      state="$(container_state "$(compose_container "${service}")")"
      [[ "${state}" == running* ]] || pending+=("${service}")
    done
    (( ${#pending[@]} )) || return 0
    if (( $(date +%s) >= deadline )); then
      log "not done or not running within ${COMPOSE_RUN_TIMEOUT_S}s: ${pending[*]}"
      return 1
    fi
    sleep 1
  done
}

compose_diagnostics() {
  local id
  log "compose state and the last log lines of each container:"
  podman ps -a --filter "label=io.podman.compose.project=${PROJECT}" \
    --format '{{.Names}} {{.Status}}' >&2
  for id in $(podman ps -aq --filter "label=io.podman.compose.project=${PROJECT}"); do
    printf -- '--- %s\n' "$(podman inspect -f '{{.Name}}' "${id}")" >&2
    podman logs --tail 15 "${id}" >&2 2>&1
  done
}

# podman-compose 1.0.3's down removes containers without their anonymous volumes (the images
# declare some) and leaves the network: everything labelled with the project goes here.
compose_teardown() {
  local label="label=io.podman.compose.project=${PROJECT}"
  log "tearing down compose project ${PROJECT} (log: ${LOG_DIR}/${COMPOSE_LOG}-down.log)"
  {
    podman ps -aq --filter "${label}" | xargs -r podman rm -f -v
    compose down -v
    podman volume ls -q --filter "${label}" | xargs -r podman volume rm -f
    podman network ls -q --filter "${label}" | xargs -r podman network rm -f
  } >"${LOG_DIR}/${COMPOSE_LOG}-down.log" 2>&1
  [[ -z "$(podman ps -aq --filter "${label}")" ]]
}

# compose_end_to_end "ONE_SHOT..." "RUNNING..." "STOP..." [RUN_OPTION...]: from a clean project,
# build and start it, wait for it (compose_wait_started), stop the STOP services (none normally),
# then run deploy/containers/compose_check.py with the RUN_OPTIONs; always torn down.
compose_end_to_end() {
  local one_shot="$1" running="$2" stop="$3" status=0 service
  shift 3
  compose_teardown || return 1
  log "building and starting compose project ${PROJECT} (log: ${LOG_DIR}/${COMPOSE_LOG}-up.log)"
  if ! { compose build && compose up -d; } >"${LOG_DIR}/${COMPOSE_LOG}-up.log" 2>&1; then
    log "podman-compose build/up failed; see ${LOG_DIR}/${COMPOSE_LOG}-up.log"
    status=1
  elif ! compose_wait_started "${one_shot}" "${running}"; then
    status=1
  else
    echo "${COMPOSE_LOG}: ${one_shot// /, } done, ${running// /, } running"
    for service in ${stop}; do
      log "stopping ${service} before the check (COMPOSE_MIRRORED_STOP): the check must fail"
      podman stop "$(compose_container "${service}")" >/dev/null || status=1
    done
    # The check runs as a one-off container of the invalidator service (its settings and
    # network); podman-compose run gives it standard input, from which python reads the script.
    # podman-compose 1.0.3 does not pass the container's exit status on, and the container
    # would inherit the service's restart policy: restarted after a failure, with nothing left
    # on its standard input, it would exit 0. So --rm (no restart), and the check passed only
    # when its last line says so. With two files podman-compose prints the merged configuration
    # first (" ** merged:" and JSON up to a "}" line): left out of the output.
    compose run --rm --name "${PROJECT}_check" --no-deps -T "$@" --entrypoint python \
      invalidator-us - <"${SCRIPT_DIR}/compose_check.py" 2>>"${LOG_DIR}/${COMPOSE_LOG}-up.log" \
      | sed '/^ \*\* merged:$/,/^}$/d' \
      | grep -v -e '^\[' -e '^podman ' -e '^using podman' -e '^exit code:' \
      | tee "${LOG_DIR}/${COMPOSE_LOG}-check.log"
    [[ "$(tail -n 1 "${LOG_DIR}/${COMPOSE_LOG}-check.log")" == "compose check passed" ]] \
      || { log "the compose check did not pass (its output: ${LOG_DIR}/${COMPOSE_LOG}-check.log)"; status=1; }
  fi
  (( status == 0 )) || compose_diagnostics
  compose_teardown || { log "compose teardown left containers behind"; status=1; }
  return "${status}"
}

step_compose() {
  PROJECT="${COMPOSE_PROJECT}" COMPOSE_LOG=compose
  COMPOSE_FILES=(-f docker-compose.yml)
  compose_end_to_end "topic-init redis-init" "invalidator-eu invalidator-us" ""
}

# The mirrored topology; the check is told each region's cluster (COMPOSE_CHECK_CLUSTERS).
step_compose_mirrored() {
  PROJECT="${COMPOSE_MIRRORED_PROJECT}" COMPOSE_LOG=compose-mirrored
  COMPOSE_FILES=(-f docker-compose.yml -f docker-compose.mirrored.yml)
  compose_end_to_end "topic-init topic-init-us redis-init" \
    "invalidator-eu invalidator-us mm2-eu mm2-us" "${COMPOSE_MIRRORED_STOP}" \
    -e 'COMPOSE_CHECK_CLUSTERS={"eu": "kafka:9092", "us": "kafka-us:9092"}'
}

# ------------------------------------------------------------------------------------ dockerfile

step_dockerfile() {
  local help user
  log "podman build -f deploy/Dockerfile FROM ${PYTHON_IMAGE} (log: ${LOG_DIR}/dockerfile.log)"
  (cd "${REPO_ROOT}" && podman build --build-arg "PYTHON_IMAGE=${PYTHON_IMAGE}" \
    -f deploy/Dockerfile -t "${DOCKERFILE_IMAGE}" .) >"${LOG_DIR}/dockerfile.log" 2>&1 \
    || { log "the build failed; see ${LOG_DIR}/dockerfile.log"; return 1; }
  help="$(podman run --rm "${DOCKERFILE_IMAGE}" --help)" || { log "invalidator --help failed"; return 1; }
  [[ "${help}" == "usage: invalidator"* ]] || { log "invalidator --help printed: ${help}"; return 1; }
  user="$(podman run --rm --entrypoint id "${DOCKERFILE_IMAGE}" -un)" || return 1
  [[ "${user}" != root ]] || { log "the image runs as root"; return 1; }
  echo "dockerfile: built FROM ${PYTHON_IMAGE}; invalidator --help runs as ${user}"
}

# ------------------------------------------------------------------------------------ main

STARTED_SERVICE=0
cleanup() {
  remove_smoke_containers
  if (( STARTED_SERVICE )); then bash "${SCRIPT_DIR}/podman-service.sh" stop; fi
}

main() {
  local steps=() step started failed=0 results=()
  for step in "$@"; do
    case " images ${ALL_STEPS[*]} " in
      *" ${step} "*) [[ "${step}" == images ]] || steps+=("${step}") ;;
      *) usage; log "unknown step '${step}'"; exit 2 ;;
    esac
  done
  # `images` alone: the images are built (always the first step) and nothing else runs.
  (( ${#steps[@]} || $# )) || steps=("${ALL_STEPS[@]}")
  [[ "$(id -u)" == 0 ]] || { log "run as root (podman's store and debootstrap need it)"; exit 2; }
  mkdir -p "${LOG_DIR}"
  require_tools "${LOG_DIR}/apt.log" curl:curl podman-compose:podman-compose || exit 1
  ensure_podman "${LOG_DIR}/apt.log" || exit 1
  trap cleanup EXIT
  if [[ " ${steps[*]} " == *" tests "* ]] && ! bash "${SCRIPT_DIR}/podman-service.sh" status >/dev/null; then
    STARTED_SERVICE=1
  fi

  started="${SECONDS}"
  if bash "${SCRIPT_DIR}/build-images.sh" >"${LOG_DIR}/images.log" 2>&1; then
    results+=("PASS images ($(( SECONDS - started ))s)")
  else
    tail -n 5 "${LOG_DIR}/images.log" >&2
    results+=("FAIL images ($(( SECONDS - started ))s; see ${LOG_DIR}/images.log)")
    printf '%s\n' "${results[@]}"
    return 1
  fi
  printf '%s\n' "${results[-1]}"

  for step in "${steps[@]}"; do
    log "step ${step}"
    started="${SECONDS}"
    if "step_${step//-/_}"; then
      results+=("PASS ${step} ($(( SECONDS - started ))s)")
    else
      results+=("FAIL ${step} ($(( SECONDS - started ))s)")
      failed=1
    fi
    printf '%s\n' "${results[-1]}"
  done
  printf '\ncontainers-check:\n'
  printf '  %s\n' "${results[@]}"
  return "${failed}"
}

main "$@"
