# shellcheck shell=bash
# Sourced by the scripts of deploy/containers/ once they set SCRIPT_DIR: where they keep their
# state, and installing the tools they miss (require_tools calls the sourcing script's log()).
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
