#!/usr/bin/env bash
# The Redis sinks against live servers: test_sink_redis_live on a plain server
# (and one with a password), then on a 6-node cluster while a master is
# SIGKILLed and another SIGSTOPped; the cluster's totals must equal the expected ones exactly.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/redis_lib.sh"
live=$build/tests/test_sink_redis_live
# a SIGSTOPped server ignores SIGTERM until continued
trap 'kill -CONT "${pids[@]}" 2>/dev/null || true; cleanup' EXIT

p=$(free_port); redis_start "$work/plain" "$p"
a=$(free_port); REDIS_AUTH=s3cret redis_start "$work/auth" "$a" --requirepass s3cret
TALLY_REDIS_ADDR=127.0.0.1:$p TALLY_REDIS_PID=$(cat "$work/plain/pid") \
  TALLY_REDIS_AUTH_ADDR=127.0.0.1:$a "$live" || fail "live tests on one server"

redis_cluster_start
masters=($(redis_cluster_master_ports))
victim=${masters[0]} stopped=${masters[1]}
seed=""; for q in "${cluster_ports[@]}"; do [ "$q" != "$victim" ] && seed=$q; done
TALLY_REDIS_CLUSTER_SEEDS=$cluster_seeds TALLY_REDIS_KILL_PID=$(cat "$work/cluster-$victim/pid") \
  TALLY_REDIS_STOP_PID=$(cat "$work/cluster-$stopped/pid") \
  TALLY_REDIS_EXPECTED=$work/fo.tsv "$live" || fail "cluster failover test"
redis_cluster_wait_ok
"$check" "$work/fo.tsv" --redis-cluster "127.0.0.1:$seed"
echo "PASS sink-redis"
