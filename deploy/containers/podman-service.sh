#!/usr/bin/env bash
# Serves the Docker API from podman, for Docker clients (testcontainers, the docker CLI) on a
# machine with podman and no Docker engine.
#
#   eval "$(deploy/containers/podman-service.sh start)"   # idempotent; prints the export lines
#   deploy/containers/podman-service.sh env               # the export lines only
#   deploy/containers/podman-service.sh status            # exit 0 when the socket answers
#   deploy/containers/podman-service.sh stop
#
# `start` runs `podman system service --time=0 unix://$STATE/podman.sock` in the background
# (pid file podman.pid, log podman.log; STATE is CONTAINERS_STATE_DIR, default <repo>/.containers)
# unless that socket already answers, then prints DOCKER_HOST and the TESTCONTAINERS_* settings
# podman needs (no Ryuk reaper; containers reached on 127.0.0.1 through their published ports).
#
# Run as root on a host without systemd, podman's defaults (systemd cgroups, crun) do not work;
# `start`, like every script here, first installs podman and runc when missing and writes
# /etc/containers/containers.conf (cgroupfs, runc) when that file does not exist (ensure_podman
# in common.sh: an existing file is never changed, a warning names the settings it lacks).
# Progress and warnings go to stderr.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/containers/common.sh
. "${SCRIPT_DIR}/common.sh"
SOCKET="${STATE_DIR}/podman.sock"
PID_FILE="${STATE_DIR}/podman.pid"
LOG_FILE="${STATE_DIR}/podman.log"
START_TIMEOUT=30   # seconds until the socket must answer
STOP_TIMEOUT=15    # seconds between SIGTERM and SIGKILL

log() { printf '[podman-service] %s\n' "$*" >&2; }
die() { printf 'podman-service.sh: error: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
}

read_pid() { if [[ -s "${PID_FILE}" ]]; then tr -dc '0-9' <"${PID_FILE}"; fi; }

# The pid in the pid file, if it is still our `podman system service` on this socket.
service_pid() {
  local pid
  pid="$(read_pid)"
  [[ -n "${pid}" ]] || return 0
  if [[ "$(ps -ww -o args= -p "${pid}" 2>/dev/null)" == *"system service"*"${SOCKET}"* ]]; then
    printf '%s\n' "${pid}"
  fi
}

# True when the Docker API on the socket answers /_ping.
answers() {
  [[ -S "${SOCKET}" ]] || return 1
  [[ "$(curl -sf --max-time 5 --unix-socket "${SOCKET}" http://d/_ping 2>/dev/null)" == OK ]]
}

print_env() {
  printf 'export DOCKER_HOST=unix://%s\n' "${SOCKET}"
  printf 'export TESTCONTAINERS_RYUK_DISABLED=true\n'
  printf 'export TESTCONTAINERS_CONNECTION_MODE=docker_host\n'
  printf 'export TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1\n'
}

cmd_start() {
  local pid deadline
  mkdir -p "${STATE_DIR}"
  require_tools "${STATE_DIR}/apt.log" curl:curl || die "curl is missing"
  ensure_podman "${STATE_DIR}/apt.log" || die "podman is not set up"
  if answers; then
    log "podman service already answers on ${SOCKET}"
    print_env
    return 0
  fi
  pid="$(service_pid)"
  if [[ -n "${pid}" ]]; then
    log "podman service pid ${pid} does not answer: restarting it"
    cmd_stop
  fi
  rm -f "${SOCKET}"
  log "starting podman system service on ${SOCKET} (log: ${LOG_FILE})"
  nohup podman system service --time=0 "unix://${SOCKET}" </dev/null >>"${LOG_FILE}" 2>&1 &
  echo $! >"${PID_FILE}"
  deadline=$(( $(date +%s) + START_TIMEOUT ))
  until answers; do
    [[ -n "$(service_pid)" ]] || die "podman system service exited; see ${LOG_FILE}"
    (( $(date +%s) < deadline )) || die "podman service did not answer on ${SOCKET} within ${START_TIMEOUT}s; see ${LOG_FILE}"
    sleep 0.2
  done
  print_env
}

cmd_stop() {
  local pid deadline
  pid="$(service_pid)"
  if [[ -z "${pid}" ]]; then
    log "no podman service of ours is running"
    rm -f "${PID_FILE}"
    return 0
  fi
  log "stopping podman service (pid ${pid})"
  kill -TERM "${pid}" 2>/dev/null || true
  deadline=$(( $(date +%s) + STOP_TIMEOUT ))
  while kill -0 "${pid}" 2>/dev/null && (( $(date +%s) < deadline )); do sleep 0.2; done
  if kill -0 "${pid}" 2>/dev/null; then
    log "pid ${pid} did not stop within ${STOP_TIMEOUT}s: SIGKILL"
    kill -KILL "${pid}" 2>/dev/null || true
  fi
  rm -f "${PID_FILE}" "${SOCKET}"
}

cmd_status() {
  if answers; then
    printf 'podman-service up   %s pid %s\n' "${SOCKET}" "$(service_pid)"
  else
    printf 'podman-service down %s\n' "${SOCKET}"
    return 1
  fi
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) print_env ;;
  -h|--help|help) usage ;;
  *) usage; exit 2 ;;
esac
