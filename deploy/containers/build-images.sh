#!/usr/bin/env bash
# Builds the local stand-ins for the registry images docker-compose.yml and the container tests
# use, on a machine with podman but no reachable image registry. Everything comes from Debian
# bookworm packages (debootstrap, apt) and from Apache Kafka's jars on Maven Central (the jar
# cache deploy/local/stack.sh resolves with deploy/local/pom.xml, plus connect-mirror's for
# MirrorMaker 2, resolved here with deploy/containers/kafka/pom-mirror.xml into
# $CONTAINERS_STATE_DIR/mirror-libs/):
#
#   localhost/invalidator-debian:bookworm   debootstrap --variant=minbase, imported
#   localhost/invalidator-kafka:4.1.0       apache/kafka:4.1.0's interface (KAFKA_* env, CLUSTER_ID,
#                                           /opt/kafka/bin/kafka-*.sh, connect-mirror-maker.sh)
#   localhost/invalidator-redis:7           redis:7's interface (redis-server, redis-cli)
#   localhost/invalidator-postgres:15       postgres:15's interface (POSTGRES_* env, pg_isready)
#   localhost/invalidator-python:3.11       python:3.11-slim's interface (python, pip on PATH)
#
# The debian image is a debootstrapped root file system fed to `podman import`; the others are
# `podman build`s of deploy/containers/<name>/Containerfile FROM it. Each image carries a label
# with the hash of its inputs: an image that exists with the same inputs is kept, one whose
# inputs changed is rebuilt, and --rebuild rebuilds whatever is named from scratch (fresh
# packages, no cached layers). Run as root (debootstrap and the machine's shared podman store
# need it). Names to build may be given (default: all); the debian image is built first when it
# is named or missing. On a fresh machine podman and runc are installed and
# /etc/containers/containers.conf (cgroupfs, runc) is written, unless it exists, before the first
# podman command (ensure_podman, deploy/containers/common.sh).
#
# Usage: deploy/containers/build-images.sh [--rebuild] [debian|kafka|redis|postgres|python ...]
# Environment: CONTAINERS_STATE_DIR (<repo>/.containers: build logs and staging), DEBIAN_MIRROR
# (http://deb.debian.org/debian), DEBIAN_SECURITY_MIRROR (http://deb.debian.org/debian-security),
# KAFKA_LIBS_DIR (as stack.sh), PODMAN_BUILD_NETWORK (podman build --network; default: podman's),
# LOCAL_CA_CERTS_DIR (/usr/local/share/ca-certificates: the *.crt there, the host's own certificate
# authorities such as a TLS-inspecting proxy's, are trusted by the python image, so pip inside it
# reaches PyPI wherever the host's pip does).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/containers/common.sh
. "${SCRIPT_DIR}/common.sh"
LOG_DIR="${STATE_DIR}/logs"
DEBIAN_SUITE=bookworm
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DEBIAN_SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
KAFKA_VERSION=4.1.0
PODMAN_BUILD_NETWORK="${PODMAN_BUILD_NETWORK:-}"
LOCAL_CA_CERTS_DIR="${LOCAL_CA_CERTS_DIR:-/usr/local/share/ca-certificates}"
INPUTS_LABEL=org.invalidator.inputs

# Image names: the same values deploy/containers/local-images.env gives users.
DEBIAN_IMAGE=localhost/invalidator-debian:bookworm
KAFKA_LOCAL_IMAGE="localhost/invalidator-kafka:${KAFKA_VERSION}"
REDIS_LOCAL_IMAGE=localhost/invalidator-redis:7
POSTGRES_LOCAL_IMAGE=localhost/invalidator-postgres:15
PYTHON_LOCAL_IMAGE=localhost/invalidator-python:3.11
ALL_IMAGES=(debian kafka redis postgres python)

log() { printf '[images] %s\n' "$*" >&2; }
die() { printf 'build-images.sh: error: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
}

image_name() {
  case "$1" in
    debian) echo "${DEBIAN_IMAGE}" ;;
    kafka) echo "${KAFKA_LOCAL_IMAGE}" ;;
    redis) echo "${REDIS_LOCAL_IMAGE}" ;;
    postgres) echo "${POSTGRES_LOCAL_IMAGE}" ;;
    python) echo "${PYTHON_LOCAL_IMAGE}" ;;
    *) return 1 ;;
  esac
}

# Hash of an image's inputs: the files of its directory under deploy/containers/ plus extra words.
inputs_hash() {
  local dir="$1"; shift
  {
    printf '%s\n' "$@"
    if [[ -n "${dir}" ]]; then
      (cd "${dir}" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    fi
  } | sha256sum | cut -c1-16
}

current_inputs() {
  podman image inspect --format "{{ index .Labels \"${INPUTS_LABEL}\" }}" "$1" 2>/dev/null || true
}

# True when image $1 must be (re)built for inputs hash $2.
needs_build() {
  local image="$1" hash="$2" have
  if (( REBUILD )); then return 0; fi
  podman image exists "${image}" || return 0
  have="$(current_inputs "${image}")"
  if [[ "${have}" == "${hash}" ]]; then
    log "${image} is up to date"
    return 1
  fi
  log "${image} was built from other inputs (${have:-unlabelled}, now ${hash}): rebuilding"
  return 0
}

build_debian() {
  local hash rootfs
  hash="$(inputs_hash "" debootstrap minbase "${DEBIAN_SUITE}" "${DEBIAN_MIRROR}" "${DEBIAN_SECURITY_MIRROR}")"
  needs_build "${DEBIAN_IMAGE}" "${hash}" || return 0
  rootfs="$(mktemp -d "${STATE_DIR}/rootfs.XXXXXX")"
  # shellcheck disable=SC2064  # the path is fixed now
  trap "rm -rf '${rootfs}'" RETURN
  log "debootstrap --variant=minbase ${DEBIAN_SUITE} from ${DEBIAN_MIRROR} (log: ${LOG_DIR}/debian.log)"
  debootstrap --variant=minbase "${DEBIAN_SUITE}" "${rootfs}" "${DEBIAN_MIRROR}" \
    >"${LOG_DIR}/debian.log" 2>&1 || die "debootstrap failed; see ${LOG_DIR}/debian.log"
  # The suites an official debian:bookworm image has, and no package lists or caches.
  rm -f "${rootfs}/etc/apt/sources.list"
  cat >"${rootfs}/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: ${DEBIAN_MIRROR}
Suites: ${DEBIAN_SUITE} ${DEBIAN_SUITE}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${DEBIAN_SECURITY_MIRROR}
Suites: ${DEBIAN_SUITE}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  rm -rf "${rootfs}"/var/lib/apt/lists/* "${rootfs}"/var/cache/apt/*.bin \
    "${rootfs}"/var/cache/apt/archives/*.deb "${rootfs}"/var/log/* \
    "${rootfs}/etc/hostname" "${rootfs}/etc/resolv.conf"
  log "importing ${DEBIAN_IMAGE}"
  tar --numeric-owner -C "${rootfs}" -c . \
    | podman import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' \
        --change "LABEL ${INPUTS_LABEL}=${hash}" - "${DEBIAN_IMAGE}" >>"${LOG_DIR}/debian.log" 2>&1 \
    || die "podman import failed; see ${LOG_DIR}/debian.log"
}

# podman build of deploy/containers/$name/Containerfile; the context is a staged copy of that
# directory (plus, for kafka, the jars under libs/).
build_from_containerfile() {
  local name="$1" image dir hash stage options=() extra=()
  image="$(image_name "${name}")"
  dir="${SCRIPT_DIR}/${name}"
  [[ -f "${dir}/Containerfile" ]] || die "${dir}/Containerfile not found"
  podman image exists "${DEBIAN_IMAGE}" || die "${DEBIAN_IMAGE} is missing: build it first (build-images.sh debian)"
  case "${name}" in
    kafka) extra=("${KAFKA_VERSION}" "$(kafka_jar_list)" "$(mirror_jar_list)") ;;
    python) extra=("$(local_ca_certs | xargs -r sha256sum)") ;;
  esac
  hash="$(inputs_hash "${dir}" "$(current_inputs "${DEBIAN_IMAGE}")" "${extra[@]}")"
  needs_build "${image}" "${hash}" || return 0
  stage="${STATE_DIR}/build/${name}"
  rm -rf "${stage}"
  mkdir -p "${stage}"
  cp -a "${dir}/." "${stage}/"
  case "${name}" in
    # The jars both sets have (kafka-clients, jackson, ...) are the same versions: one copy.
    kafka) mkdir -p "${stage}/libs"; cp "${KAFKA_JARS_DIR}"/*.jar "${stage}/libs/"
           cp "${MIRROR_JARS_DIR}"/*.jar "${stage}/libs/" ;;
    python) mkdir -p "${stage}/ca-certificates"; local_ca_certs | xargs -r cp -t "${stage}/ca-certificates/" ;;
  esac
  if [[ -n "${PODMAN_BUILD_NETWORK}" ]]; then options+=(--network "${PODMAN_BUILD_NETWORK}"); fi
  # A rebuild asked for installs the packages afresh instead of reusing cached layers.
  if (( REBUILD )); then options+=(--no-cache); fi
  log "podman build ${image} (log: ${LOG_DIR}/${name}.log)"
  podman build "${options[@]}" --pull=never --build-arg "BASE_IMAGE=${DEBIAN_IMAGE}" \
    --label "${INPUTS_LABEL}=${hash}" -t "${image}" -f "${stage}/Containerfile" "${stage}" \
    >"${LOG_DIR}/${name}.log" 2>&1 || die "podman build ${image} failed; see ${LOG_DIR}/${name}.log"
  rm -rf "${stage}"
}

# The Kafka jars, resolved (once, cached in KAFKA_LIBS_DIR) by stack.sh from its pom.
KAFKA_JARS_DIR=""
resolve_kafka_jars() {
  [[ -z "${KAFKA_JARS_DIR}" ]] || return 0
  log "resolving the Kafka ${KAFKA_VERSION} jars (deploy/local/stack.sh libs)"
  KAFKA_JARS_DIR="$(KAFKA_VERSION="${KAFKA_VERSION}" bash "${REPO_ROOT}/deploy/local/stack.sh" libs)" \
    || die "could not resolve the Kafka jars (deploy/local/stack.sh libs)"
}
kafka_jar_list() { (cd "${KAFKA_JARS_DIR}" && ls -- *.jar); }

# MirrorMaker 2's jars (connect-mirror and its runtime dependencies), resolved once with Maven
# into the state directory (through a temporary directory: a failed run leaves no half cache).
MIRROR_POM="${SCRIPT_DIR}/kafka/pom-mirror.xml"
MIRROR_JARS_DIR="${STATE_DIR}/mirror-libs/${KAFKA_VERSION}"
resolve_mirror_jars() {
  local tmp="${MIRROR_JARS_DIR}.tmp.$$"
  [[ ! -f "${MIRROR_JARS_DIR}/connect-mirror-${KAFKA_VERSION}.jar" ]] || return 0
  log "resolving the MirrorMaker 2 (connect-mirror ${KAFKA_VERSION}) jars with Maven (log: ${LOG_DIR}/maven-mirror.log)"
  rm -rf "${tmp}"
  mvn -B -q -f "${MIRROR_POM}" dependency:copy-dependencies -Dkafka.version="${KAFKA_VERSION}" \
    -DoutputDirectory="${tmp}" >"${LOG_DIR}/maven-mirror.log" 2>&1 \
    || { rm -rf "${tmp}"; die "Maven could not resolve connect-mirror ${KAFKA_VERSION}; see ${LOG_DIR}/maven-mirror.log"; }
  [[ -f "${tmp}/connect-mirror-${KAFKA_VERSION}.jar" ]] || die "connect-mirror-${KAFKA_VERSION}.jar missing after Maven; see ${LOG_DIR}/maven-mirror.log"
  rm -rf "${MIRROR_JARS_DIR}"
  mv "${tmp}" "${MIRROR_JARS_DIR}"
}
mirror_jar_list() { (cd "${MIRROR_JARS_DIR}" && ls -- *.jar); }

# The host's local certificate authorities (*.crt, as update-ca-certificates takes them).
local_ca_certs() {
  [[ -d "${LOCAL_CA_CERTS_DIR}" ]] || return 0
  find "${LOCAL_CA_CERTS_DIR}" -maxdepth 1 -type f -name '*.crt' | LC_ALL=C sort
}

main() {
  local rebuild=0 arg wanted=() name
  for arg in "$@"; do
    case "${arg}" in
      --rebuild) rebuild=1 ;;
      -h|--help) usage; exit 0 ;;
      *) image_name "${arg}" >/dev/null || { usage; die "unknown image '${arg}'"; }; wanted+=("${arg}") ;;
    esac
  done
  (( ${#wanted[@]} )) || wanted=("${ALL_IMAGES[@]}")
  REBUILD="${rebuild}"
  [[ "$(id -u)" == 0 ]] || die "run as root: debootstrap and the machine's podman store need it"
  mkdir -p "${LOG_DIR}"
  require_tools "${LOG_DIR}/apt.log" debootstrap:debootstrap || exit 1
  # podman, runc and containers.conf before the first podman command (see common.sh).
  ensure_podman "${LOG_DIR}/apt.log" || exit 1
  # Maven resolves the Kafka jars the first time (stack.sh keeps them in its cache).
  if [[ " ${wanted[*]} " == *" kafka "* ]]; then require_tools "${LOG_DIR}/apt.log" mvn:maven || exit 1; fi
  # The debian image first when it is named or missing: the others start from it.
  if [[ " ${wanted[*]} " == *" debian "* ]] || ! podman image exists "${DEBIAN_IMAGE}"; then
    REBUILD="$([[ " ${wanted[*]} " == *" debian "* ]] && echo "${rebuild}" || echo 0)"
    build_debian
    REBUILD="${rebuild}"
  fi
  for name in "${wanted[@]}"; do
    case "${name}" in
      debian) ;;
      kafka) resolve_kafka_jars; resolve_mirror_jars; build_from_containerfile kafka ;;
      *) build_from_containerfile "${name}" ;;
    esac
  done
  for name in "${wanted[@]}"; do
    printf '%s\n' "$(image_name "${name}")"
  done
}

REBUILD=0
main "$@"
