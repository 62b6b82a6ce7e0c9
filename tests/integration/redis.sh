#!/usr/bin/env bash
# tally-gen captures (TLY1 with duplicates and malformed datagrams, StatsD)
# replayed through net_pcap into tallyd, once with the Redis sink on a private
# server and once with the Redis Cluster sink on a private 6-node cluster: the
# hashes in each must equal the expected totals exactly (tally-check).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/redis_lib.sh"

"$gen" --proto tly1 --keys 3000 --dist zipf --events-per-dgram 6 --count 12000 \
  --dup-rate 0.05 --malformed-rate 0.02 --time-ms "$now_ms" --time-span-ms 40000 \
  --window-ms 10000 --seed 31 --pcap "$work/t.pcap" --expected "$work/t.tsv" > "$work/gen-t.txt"
"$gen" --proto statsd --keys 400 --events-per-dgram 12 --count 3000 --malformed-rate 0.05 \
  --time-ms "$now_ms" --time-span-ms 40000 --window-ms 10000 --seed 32 \
  --pcap "$work/s.pcap" --expected "$work/s.tsv" > "$work/gen-s.txt"
{ cat "$work/t.tsv"; tail -n +2 "$work/s.tsv"; } > "$work/expected.tsv"

# run_tallyd NAME SINK-ARGS...: replay both captures into tallyd with that sink.
run_tallyd() {
  local name=$1; shift
  "$tallyd" --window_ms 10000 "$@" --ctl_socket "$work/$name.sock" \
    --stop_after_idle_ms 1500 --run_ms 120000 --dedup_capacity 1048576 --table_rows 131072 \
    --flush_interval_ms 200 --rx_queues 2 \
    --port "net_pcap0,rx_pcap=$work/t.pcap,rx_pcap=$work/s.pcap" \
    -- -l 0-1 "${eal_test[@]}" 2> "$work/$name.log" \
    || { cat "$work/$name.log"; fail "tallyd ($name) exited $?"; }
  cat "$work/$name.log"
  expect_counter "$work/$name.log" drop_duplicate -eq "$(gen_summary "$work/gen-t.txt" duplicates_sent)"
  expect_counter "$work/$name.log" sink_errors -eq 0
  expect_counter "$work/$name.log" drop_table_full -eq 0
}

p=$(free_port); redis_start "$work/plain" "$p"
run_tallyd redis --sink redis --redis_addr "127.0.0.1:$p"
"$check" "$work/expected.tsv" --redis "127.0.0.1:$p"

redis_cluster_start
redis_cluster_wait_synced
run_tallyd redis-cluster --sink redis-cluster --redis_cluster_nodes "$cluster_seeds"
"$check" "$work/expected.tsv" --redis-cluster "127.0.0.1:${cluster_ports[0]}"
echo "PASS redis"
