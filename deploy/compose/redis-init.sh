#!/usr/bin/env bash
# docker-compose.yml's redis-init: waits (at most REDIS_INIT_TIMEOUT_S, default 120) until
# redis-eu and the six redis-us nodes answer PING, forms the us Cluster (3 masters, one replica
# each, as deploy/local/stack.sh does) unless it is already complete, waits until every node is
# cluster_state:ok with each master's replica linked, then leaves the marker /init-done/redis that
# the invalidators wait for. Cluster nodes announce their container addresses.
set -euo pipefail

US_NODES=(redis-us-1:17001 redis-us-2:17002 redis-us-3:17003
          redis-us-4:17004 redis-us-5:17005 redis-us-6:17006)
TIMEOUT_S="${REDIS_INIT_TIMEOUT_S:-120}"
deadline=$(( $(date +%s) + TIMEOUT_S ))

cli() { local node="$1"; shift; timeout 5 redis-cli -h "${node%:*}" -p "${node#*:}" "$@" 2>/dev/null; }
answers() { [[ "$(cli "$1" ping)" == PONG ]]; }
address_of() { getent hosts "$1" | awk '{ print $1; exit }'; }
resolves() { [[ -n "$(address_of "$1")" ]]; }

# Every node cluster_state:ok, 3 masters with one connected replica each, 3 replicas linked.
cluster_complete() {
  local node info masters=0 replicas=0
  for node in "${US_NODES[@]}"; do
    [[ "$(cli "${node}" cluster info)" == *cluster_state:ok* ]] || return 1
    info="$(cli "${node}" info replication | tr -d '\r')"
    if [[ "${info}" == *role:master* && "${info}" == *connected_slaves:1* ]]; then
      masters=$(( masters + 1 ))
    elif [[ "${info}" == *role:slave* && "${info}" == *master_link_status:up* ]]; then
      replicas=$(( replicas + 1 ))
    fi
  done
  (( masters == 3 && replicas == 3 ))
}

wait_for() {
  local what="$1"; shift
  until "$@"; do
    if (( $(date +%s) >= deadline )); then
      echo "redis-init: ${what} not within ${TIMEOUT_S}s" >&2
      exit 1
    fi
    sleep 0.5
  done
}

rm -f /init-done/redis
wait_for "redis-eu answering PING" answers redis-eu:16379
for node in "${US_NODES[@]}"; do wait_for "${node} answering PING" answers "${node}"; done
if ! cluster_complete; then
  if [[ "$(cli "${US_NODES[0]}" cluster info | tr -d '\r' | sed -n 's/^cluster_known_nodes://p')" == 1 ]]; then
    addresses=()
    for node in "${US_NODES[@]}"; do
      wait_for "${node%:*} resolving" resolves "${node%:*}"
      addresses+=("$(address_of "${node%:*}"):${node#*:}")
    done
    echo "redis-init: creating the us cluster ${addresses[*]} (3 masters + 3 replicas)"
    redis-cli --cluster create "${addresses[@]}" --cluster-replicas 1 --cluster-yes
  fi
  wait_for "the us cluster complete (every node ok, each master's replica linked)" cluster_complete
fi
touch /init-done/redis
echo "redis-init: redis-eu and the us cluster ready"
