# Redis helpers for tests, sourced after lib.sh: a server or a 6-node cluster
# (3 masters, 1 replica each; a replica always takes over a dead master:
# validity factor 0, as a freshly created, idle cluster would otherwise refuse) on free loopback ports in $work, no persistence,
# all stopped by lib.sh's cleanup (their pids join $pids).

# free_port: a TCP port nobody listens on now (asks the kernel for one).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# redis_start DIR PORT [extra redis-server args]: start one server, wait until it answers.
redis_start() {
  local dir=$1 port=$2; shift 2
  mkdir -p "$dir"
  redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --save '' --appendonly no \
    --daemonize no --logfile "$dir/redis.log" "$@" &
  pids+=($!)
  echo $! > "$dir/pid"
  for _ in $(seq 100); do
    redis-cli -h 127.0.0.1 -p "$port" ${REDIS_AUTH:+-a "$REDIS_AUTH" --no-auth-warning} ping \
      >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  fail "redis-server on port $port did not start (see $dir/redis.log)"
}

# redis_cluster_start: six nodes, ports in cluster_ports, seeds in cluster_seeds.
redis_cluster_start() {
  cluster_ports=()
  local addrs=()
  for i in 0 1 2 3 4 5; do
    local p; p=$(free_port)
    # the cluster bus uses port + 10000: pick again if that is out of range
    while [ "$p" -gt 55535 ]; do p=$(free_port); done
    cluster_ports+=("$p")
    addrs+=("127.0.0.1:$p")
    redis_start "$work/cluster-$p" "$p" --cluster-enabled yes --cluster-config-file nodes.conf \
      --cluster-node-timeout 1000 --cluster-replica-validity-factor 0
  done
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes > "$work/cluster-create.log" 2>&1 \
    || { cat "$work/cluster-create.log"; fail "redis-cli --cluster create failed"; }
  cluster_seeds=$(IFS=,; echo "${addrs[*]}")
  redis_cluster_wait_ok
}

# redis_cluster_wait_ok: every live node says cluster_state:ok.
redis_cluster_wait_ok() {
  for _ in $(seq 200); do
    local bad=0
    for p in "${cluster_ports[@]}"; do
      local st; st=$(redis-cli -p "$p" cluster info 2>/dev/null | tr -d '\r' |
        awk -F: '$1=="cluster_state"{print $2}') || true  # pipefail: a killed node
      [ -z "$st" ] && continue   # a killed node
      [ "$st" = ok ] || bad=1
    done
    [ $bad -eq 0 ] && return 0
    sleep 0.1
  done
  fail "the cluster did not reach cluster_state:ok"
}

# redis_cluster_master_port: the port of one master.
redis_cluster_master_port() {
  for p in "${cluster_ports[@]}"; do
    redis-cli -p "$p" role 2>/dev/null | head -1 | grep -q master && { echo "$p"; return; }
  done
}

# redis_cluster_master_ports: the ports of the masters, one a line.
redis_cluster_master_ports() {
  for p in "${cluster_ports[@]}"; do
    redis-cli -p "$p" role 2>/dev/null | head -1 | grep -q master && echo "$p"
  done
  return 0
}

# redis_cluster_wait_synced: every replica has finished its first sync, so a
# sink that WAITs for a replica is acknowledged from its first batch (a new
# cluster's replicas start syncing only after repl-diskless-sync-delay, 5 s).
redis_cluster_wait_synced() {
  for _ in $(seq 300); do
    local bad=0
    for p in "${cluster_ports[@]}"; do
      local info; info=$(redis-cli -p "$p" info replication 2>/dev/null | tr -d '\r')
      grep -q '^role:slave' <<< "$info" || continue
      grep -q '^master_link_status:up' <<< "$info" || bad=1
    done
    [ $bad -eq 0 ] && return 0
    sleep 0.1
  done
  fail "the cluster's replicas did not finish their first sync"
}
