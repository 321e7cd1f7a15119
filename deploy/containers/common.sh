# shellcheck shell=bash
# Sourced by the scripts of deploy/containers/ once they set SCRIPT_DIR: where they keep their
# state, installing the tools they miss, and podman's set-up before its first use
# (require_tools and ensure_podman call the sourcing script's log()).
#
# Sets REPO_ROOT and STATE_DIR (CONTAINERS_STATE_DIR, default <repo>/.containers, made absolute).

REPO_ROOT="$(cd "${SCRIPT_DIR}/../.." && pwd)"
STATE_DIR="${CONTAINERS_STATE_DIR:-${REPO_ROOT}/.containers}"
[[ "${STATE_DIR}" == /* ]] || STATE_DIR="${PWD}/${STATE_DIR}"

# require_tools APT_LOG COMMAND:PACKAGE ...: installs with apt-get the packages of the commands
# not on PATH; returns 1, having logged why, when it cannot or a command is still missing.
require_tools() {
  local apt_log="$1" missing=() tool
  shift
  for tool in "$@"; do
    command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
  done
  (( ${#missing[@]} )) || return 0
  command -v apt-get >/dev/null || { log "missing ${missing[*]}, and no apt-get to install them"; return 1; }
  log "installing ${missing[*]} with apt-get (log: ${apt_log})"
  mkdir -p "$(dirname "${apt_log}")"
  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"; } \
    >"${apt_log}" 2>&1 || { log "apt-get install ${missing[*]} failed; see ${apt_log}"; return 1; }
  for tool in "$@"; do
    command -v "${tool%%:*}" >/dev/null || { log "${tool%%:*} still missing after apt-get"; return 1; }
  done
}

CONTAINERS_CONF="${CONTAINERS_CONF:-/etc/containers/containers.conf}"

# ensure_podman APT_LOG: podman and runc installed, and (as root, when no such file exists)
# CONTAINERS_CONF written with
#   [containers] default_ulimits = []   [engine] cgroup_manager = "cgroupfs", runtime = "runc"
# Every script calls it before its first podman command: as root on a host without systemd,
# podman's Debian defaults (systemd cgroups, crun) fail even to build ("crun: cgroups in hybrid
# mode not supported"), and the file names runc, which Debian's podman does not pull in. An
# existing file is never changed; a warning names the settings it lacks. Returns 1 (logged) when
# a tool cannot be installed.
ensure_podman() {
  require_tools "$1" podman:podman runc:runc || return 1
  [[ "$(id -u)" == 0 ]] || return 0
  if [[ ! -e "${CONTAINERS_CONF}" ]]; then
    log "writing ${CONTAINERS_CONF} (cgroupfs, runc, no default ulimits: podman as root without systemd)"
    mkdir -p "$(dirname "${CONTAINERS_CONF}")"
    cat >"${CONTAINERS_CONF}" <<'CONF'
# Written by deploy/containers/common.sh (ensure_podman): podman as root on a host without systemd.
[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
CONF
    return 0
  fi
  local setting missing=()
  for setting in 'default_ulimits = \[\]' 'cgroup_manager = "cgroupfs"' 'runtime = "runc"'; do
    grep -Eq "^[[:space:]]*${setting}" "${CONTAINERS_CONF}" || missing+=("${setting//\\/}")
  done
  if (( ${#missing[@]} )); then
    log "warning: ${CONTAINERS_CONF} exists and is left as it is; it lacks: ${missing[*]}" \
      "(needed where podman runs as root without systemd)"
  fi
}
