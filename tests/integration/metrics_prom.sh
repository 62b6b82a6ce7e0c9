#!/usr/bin/env bash
# A real Prometheus scrapes tallyd's /metrics: tally-gen's capture (TLY1 with
# duplicates and malformed datagrams) is replayed through net_pcap, a
# Prometheus started here scrapes every second, and its HTTP API must return
# counters equal to the traffic sent (tally-gen's summary) and to `tallyctl
# stats --json`; the exposition passes `promtool check metrics`.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/metrics_lib.sh"

"$gen" --proto tly1 --keys 2000 --dist zipf --events-per-dgram 6 --count 6000 \
  --dup-rate 0.05 --malformed-rate 0.02 --time-ms "$now_ms" --time-span-ms 30000 \
  --window-ms 10000 --seed 31 --pcap "$work/t.pcap" --expected "$work/t.tsv" > "$work/gen.txt"
sent=$(gen_summary "$work/gen.txt" datagrams_sent)
accepted=$(gen_summary "$work/gen.txt" events_valid_expected)

"$tallyd" --window_ms 10000 --sqlite_path "$work/tally.db" --ctl_socket "$work/ctl.sock" \
  --stop_after_idle_ms 600000 --run_ms 240000 --dedup_capacity 1048576 --table_rows 131072 \
  --flush_interval_ms 200 --port "net_pcap0,rx_pcap=$work/t.pcap" \
  -- -l 0-1 "${eal_test[@]}" 2> "$work/tallyd.log" &
tpid=$!; pids+=("$tpid")
wait_ready "$work/ctl.sock" "$work/tallyd.log"
mport=$(metrics_port "$work/ctl.sock")
echo "tallyd metrics on 127.0.0.1:$mport"

# The replay is over and flushed when every frame is counted and every
# accepted event is in the sink.
for _ in $(seq 300); do
  "$tallyctl" -s "$work/ctl.sock" stats --json > "$work/stats.json"
  [ "$(jfield "$work/stats.json" counters rx_packets)" = "$sent" ] &&
    [ "$(jfield "$work/stats.json" counters flush_events)" = "$accepted" ] && break
  sleep 0.1
done
[ "$(jfield "$work/stats.json" counters flush_events)" = "$accepted" ] || fail "replay not flushed"

http_get "http://127.0.0.1:$mport/metrics" > "$work/metrics.txt"
promtool check metrics < "$work/metrics.txt" || fail "promtool check metrics complains"
echo "ok: promtool check metrics"

pport=$(free_port)
cat > "$work/prometheus.yml" <<YML
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: ['$src/deploy/prometheus/tally.rules.yml']
scrape_configs:
  - job_name: tally
    static_configs: [{targets: ['127.0.0.1:$mport']}]
YML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prom" \
  --web.listen-address="127.0.0.1:$pport" > "$work/prometheus.log" 2>&1 &
pids+=("$!")

for _ in $(seq 600); do
  [ "$(prom_query "$pport" 'sum(tally_events_accepted_total{job="tally"})')" = "$accepted" ] && break
  sleep 0.1
done

# query NAME PROMQL EXPECTED
query() {
  local v; v=$(prom_query "$pport" "$2")
  [ "$v" = "$3" ] || { tail -20 "$work/prometheus.log"; fail "Prometheus: $1 ($2) = '$v', expected $3"; }
  echo "ok: Prometheus $1 = $v"
}
c() { jfield "$work/stats.json" counters "$1"; }
query events_accepted 'sum(tally_events_accepted_total)' "$accepted"
query rx_packets 'sum(tally_rx_packets_total)' "$sent"
query rx_bytes 'sum(tally_rx_bytes_total)' "$(c rx_bytes)"
query duplicates 'sum(tally_drops_total{reason="duplicate"})' \
  "$(gen_summary "$work/gen.txt" duplicates_sent)"
query tly1_rejections 'sum(tally_drops_total{reason=~"tly1_.*"})' \
  "$(gen_summary "$work/gen.txt" malformed_datagrams)"
query tly1_bad_magic 'sum(tally_drops_total{reason="tly1_bad_magic"})' \
  "$(gen_summary "$work/gen.txt" expect_tly1_bad_magic)"
query flush_events 'tally_flush_events_total' "$accepted"
query window_rows 'sum(tally_window_rows_total)' "$(c window_rows)"
query worker_up 'tally_worker_up{worker="0"}' 1
query build_info 'count(tally_build_info{version!=""})' 1
query sink_up 'tally_sink_up{sink="sqlite"}' 1
query flush_histogram 'tally_flush_duration_seconds_count > bool 0' 1
query sink_writes 'tally_sink_write_duration_seconds_count >= bool tally_flush_batches_total' 1
query sink_write_inf_bucket 'sum(tally_sink_write_duration_seconds_bucket{le="+Inf"}) - sum(tally_sink_write_duration_seconds_count)' 0
query no_drop_counter_names 'count({__name__=~"tally_drop_.*|tally_tly1_bad.*"})' ""

"$tallyctl" -s "$work/ctl.sock" stop > /dev/null
wait "$tpid" || { cat "$work/tallyd.log"; fail "tallyd exited with an error"; }
"$check" "$work/t.tsv" "$work/tally.db"
echo "PASS metrics-prometheus"
