#!/usr/bin/env bash
# The main job end to end on the embedded default: install what is needed, build,
# generate TLY1 and StatsD traffic with tally-gen (duplicates and malformed
# datagrams included), replay it through tallyd on net_pcap into SQLite, then print
# the top keys and the totals from the SQLite file and check them against the
# generator's expected totals. No NIC and no hugepages needed. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

bash deploy/install-deps.sh
[ -f build/build.ninja ] || meson setup build
ninja -C build

out=${TALLY_DEMO_DIR:-$top/demo-out}
rm -rf "$out"; mkdir -p "$out"
now_ms=$(( $(date +%s) * 1000 ))
gen=build/perf/tally-gen

echo "== tally-gen: 20000 TLY1 datagrams (8 events each, 5% duplicates, 1% malformed)"
"$gen" --proto tly1 --keys 2000 --dist zipf --events-per-dgram 8 --count 20000 \
  --dup-rate 0.05 --malformed-rate 0.01 --time-ms "$now_ms" --time-span-ms 30000 \
  --window-ms 10000 --pcap "$out/tly1.pcap" --expected "$out/tly1.tsv" --seed 7
echo "== tally-gen: 5000 StatsD datagrams (10 lines each, tags, sample rates, 1% with bad lines)"
"$gen" --proto statsd --keys 500 --events-per-dgram 10 --count 5000 \
  --malformed-rate 0.01 --time-ms "$now_ms" --time-span-ms 30000 \
  --window-ms 10000 --pcap "$out/statsd.pcap" --expected "$out/statsd.tsv" --seed 8
{ cat "$out/tly1.tsv"; tail -n +2 "$out/statsd.tsv"; } > "$out/expected.tsv"

echo "== tallyd: replaying both captures through net_pcap into $out/tally.db"
build/ctrlplane/tallyd --window_ms 10000 --sqlite_path "$out/tally.db" --spool_dir "$out/spool" \
  --ctl_socket "$out/tallyd.sock" --stop_after_idle_ms 1500 --dedup_capacity 1048576 \
  --table_rows 262144 --rx_queues 2 \
  --port "net_pcap0,rx_pcap=$out/tly1.pcap,rx_pcap=$out/statsd.pcap" \
  -- -l 0-1 --no-huge --no-pci --file-prefix tally-demo -m 256 --log-level=*:warning 2> "$out/tallyd.log" || {
  cat "$out/tallyd.log"; exit 1; }
grep -E '^(rx_packets|tly1_[a-z0-9_]*|statsd_[a-z0-9_]*|events_accepted|drop_[a-z_]*|flush_batches|flush_rows|sink_errors) ' \
  "$out/tallyd.log" | awk '$2 != 0'

echo "== top 10 keys by count (from $out/tally.db)"
sqlite3 -header -column "$out/tally.db" \
  "SELECT key, sum(count) AS count, sum(sum) AS sum, min(min) AS min, max(max) AS max
     FROM tally_counts GROUP BY key ORDER BY count DESC, key LIMIT 10;"
echo "== totals"
sqlite3 -header -column "$out/tally.db" \
  "SELECT count(*) AS rows, count(DISTINCT key) AS keys, count(DISTINCT window_start_ms) AS windows,
          sum(count) AS events, sum(sum) AS sum FROM tally_counts;
   SELECT count(*) AS batches, sum(rows) AS rows_written FROM tally_batches;"
echo "== check against the generator's expected totals"
perf/tally-check "$out/expected.tsv" "$out/tally.db"
