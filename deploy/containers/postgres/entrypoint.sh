#!/usr/bin/env bash
# postgres:15's start-up rules:
# - options alone (`-c x=y`) run `postgres` with them; any other command runs as given;
# - `postgres` started as root takes ownership of PGDATA and runs as the user postgres;
# - on an empty PGDATA: initdb with superuser POSTGRES_USER (default postgres) and password
#   POSTGRES_PASSWORD, plus POSTGRES_INITDB_ARGS; remote connections (host all all all) use
#   POSTGRES_HOST_AUTH_METHOD (default scram-sha-256), and without a password only `trust` is
#   accepted; the database POSTGRES_DB (default: the user's name) is created and
#   /docker-entrypoint-initdb.d/*.sh, *.sql and *.sql.gz run, on a server that listens on no
#   TCP port, so nobody connects before it is ready;
# - each VAR may instead come from the file named by VAR_FILE.
set -Eeuo pipefail

fail() { printf 'docker-entrypoint.sh: error: %s\n' "$*" >&2; exit 1; }

file_env() {
  local var="$1" file_var="$1_FILE" default="${2:-}" value
  if [[ -n "${!var:-}" && -n "${!file_var:-}" ]]; then
    fail "both ${var} and ${file_var} are set (they are exclusive)"
  fi
  value="${default}"
  if [[ -n "${!var:-}" ]]; then
    value="${!var}"
  elif [[ -n "${!file_var:-}" ]]; then
    value="$(<"${!file_var}")"
  fi
  export "${var}=${value}"
  unset "${file_var}"
}

psql_admin() {
  psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER}" --no-password "$@"
}

init_database() {
  local auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" script
  if [[ -z "${POSTGRES_PASSWORD}" && "${auth}" != trust ]]; then
    fail "the database is uninitialized and no superuser password is given: set POSTGRES_PASSWORD \
(or POSTGRES_PASSWORD_FILE), or POSTGRES_HOST_AUTH_METHOD=trust to allow every connection \
without a password (not for anything shared)"
  fi
  # POSTGRES_INITDB_ARGS is a list of initdb options: word splitting is meant.
  # shellcheck disable=SC2086
  if [[ -n "${POSTGRES_PASSWORD}" ]]; then
    initdb --username="${POSTGRES_USER}" --pwfile=<(printf '%s\n' "${POSTGRES_PASSWORD}") \
      ${POSTGRES_INITDB_ARGS} -D "${PGDATA}"
  else
    initdb --username="${POSTGRES_USER}" ${POSTGRES_INITDB_ARGS} -D "${PGDATA}"
  fi
  {
    echo
    [[ "${auth}" != trust ]] || echo '# trust: every connection is accepted without a password'
    printf 'host all all all %s\n' "${auth}"
  } >>"${PGDATA}/pg_hba.conf"

  PGUSER="${POSTGRES_USER}" pg_ctl -D "${PGDATA}" -o "-c listen_addresses='' -p 5432" -w start
  if [[ "${POSTGRES_DB}" != postgres ]]; then
    psql_admin --dbname postgres --set db="${POSTGRES_DB}" <<<'CREATE DATABASE :"db";'
  fi
  for script in /docker-entrypoint-initdb.d/*; do
    case "${script}" in
      *.sh)
        echo "running ${script}"
        # shellcheck source=/dev/null  # the user's init scripts
        if [[ -x "${script}" ]]; then "${script}"; else . "${script}"; fi
        ;;
      *.sql) echo "running ${script}"; psql_admin --dbname "${POSTGRES_DB}" -f "${script}" ;;
      *.sql.gz) echo "running ${script}"; gunzip -c "${script}" | psql_admin --dbname "${POSTGRES_DB}" ;;
      *) [[ ! -e "${script}" ]] || echo "ignoring ${script}" ;;
    esac
  done
  pg_ctl -D "${PGDATA}" -m fast -w stop
  echo "PostgreSQL init process complete; ready for start up."
}

if [[ "${1:-}" == -* ]]; then set -- postgres "$@"; fi
[[ "${1:-}" == postgres ]] || exec "$@"

if [[ "$(id -u)" == 0 ]]; then
  mkdir -p "${PGDATA}" /var/run/postgresql
  chown -R postgres:postgres "${PGDATA}" /var/run/postgresql
  chmod 0700 "${PGDATA}"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

file_env POSTGRES_PASSWORD
file_env POSTGRES_USER postgres
file_env POSTGRES_DB "${POSTGRES_USER}"
file_env POSTGRES_INITDB_ARGS
if [[ ! -s "${PGDATA}/PG_VERSION" ]]; then
  init_database
fi
exec "$@"
