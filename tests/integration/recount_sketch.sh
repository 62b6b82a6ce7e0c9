#!/usr/bin/env bash
# tally-recount and the StatsD row kinds: timers (ms, h, d) with their
# sketches, sets with their HyperLogLog, gauges with relative lines. tallyd
# counts a capture with the archive on; the rows are checked exactly against
# an independent reader of the capture (statsd_clients.py expect); then
# tally-recount of the archive at the same window must store exactly the same
# tally_counts and tally_sketches (the same blobs, percentiles, estimates).
. "$(dirname "$0")/lib.sh"
here=$(dirname "$0")
recount=$build/ctrlplane/tally-recount
py=/usr/bin/python3
t=$(( $(date +%s) / 60 * 60 - 600 ))
lines=()
for i in $(seq 1 300); do
  lines+=("raw.t.lat:$(( (i * 37) % 500 + 1 )).$(( i % 10 ))|ms|T$t" "raw.t.u:m$(( i % 120 ))|s|T$t")
done
for i in $(seq 1 50); do lines+=("raw.t.h1:$i|h|T$((t + 60))" "raw.t.d1:$i.5|d|T$t" "raw.t.u:n$i|s|T$((t + 60))"); done
lines+=("raw.t.q:10|g|T$t" "raw.t.q:+5|g|T$t" "raw.t.q:-3|g|T$t" "raw.t.q:+1|g|T$((t + 60))"
        "raw.t.r:-2|g|T$t" "raw.t.c1:3|c|T$t" "c0:1|c") # raw.t.*: the checker's name for |T lines
"$py" "$here/statsd_clients.py" write-pcap "$work/a.pcap" 8125 "${lines[@]}"
"$tallyd" --window_ms 60000 --sqlite_path "$work/tally.db" --ctl_socket "$work/ctl.sock" \
  --stop_after_idle_ms 1000 --run_ms 60000 --table_rows 4096 --flush_interval_ms 200 \
  --lateness_ms 0 --future_ms 0 --archive_dir "$work/archive" --port "net_pcap0,rx_pcap=$work/a.pcap" \
  -- -l 0-1 "${eal_test[@]}" 2> "$work/tallyd.log" || { cat "$work/tallyd.log"; fail "tallyd exited $?"; }
"$py" "$here/statsd_clients.py" expect "$work/a.pcap" "$work/tally.db" 60000 ||
  fail "live rows differ from the capture"
"$recount" --archive "$work/archive" --from 0 --to 99999999999999 --window_ms 60000 \
  --lateness_ms 0 --future_ms 0 --sqlite_path "$work/r.db" 2> "$work/r.log" ||
  { cat "$work/r.log"; fail "tally-recount failed"; }
cat "$work/r.log"
dump() {
  sqlite3 "$1" "SELECT key, window_start_ms, window_ms, count, sum, min, max, last FROM tally_counts ORDER BY 1, 2" \
    "SELECT key, window_start_ms, window_ms, kind, hex(blob), distinct_estimate, p50, p90, p95, p99, p999 FROM tally_sketches ORDER BY 1, 2"
}
dump "$work/tally.db" > "$work/live.txt"
dump "$work/r.db" > "$work/recount.txt"
diff "$work/live.txt" "$work/recount.txt" || fail "recount rows differ from the live rows"
[ "$(sqlite3 "$work/r.db" "SELECT count(*) FROM tally_sketches")" -eq 5 ] || fail "recount: not 5 sketch rows"
grep "q|g" "$work/live.txt"
grep -q "^raw.t.q|g|$((t * 1000 + 60000))|60000|1|13.0|13.0|13.0|13.0$" "$work/live.txt" ||
  fail "q|g did not carry 12 into the next window"
echo "PASS recount_sketch"
