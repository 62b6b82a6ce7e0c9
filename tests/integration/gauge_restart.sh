#!/usr/bin/env bash
# Relative gauges survive a restart: a first tallyd stores q=10 (an absolute
# line, then +5 and -3: 12); a second tallyd on the same SQLite file gets only
# relative lines in a later window and must continue from 12, not from 0.
. "$(dirname "$0")/lib.sh"
here=$(dirname "$0")
py=/usr/bin/python3
t=$(( $(date +%s) / 60 * 60 - 600 )) # a minute boundary ten minutes ago: two windows of 60 s
"$py" "$here/statsd_clients.py" write-pcap "$work/a.pcap" 8125 \
  "q:10|g|T$t" "q:+5|g|T$t" "q:-3|g|T$t" "other:1|c|T$t"
"$py" "$here/statsd_clients.py" write-pcap "$work/b.pcap" 8125 \
  "q:+1|g|T$((t + 60))" "q:+0.5|g|T$((t + 60))"
run() {
  "$tallyd" --window_ms 60000 --sqlite_path "$work/tally.db" --ctl_socket "$work/ctl.sock" \
    --stop_after_idle_ms 1000 --run_ms 60000 --table_rows 4096 --flush_interval_ms 200 \
    --lateness_ms 0 --future_ms 0 --port "net_pcap0,rx_pcap=$1" \
    -- -l 0-1 "${eal_test[@]}" 2> "$work/tallyd.log" || { cat "$work/tallyd.log"; fail "tallyd exited $?"; }
  grep "gauge state" "$work/tallyd.log"
}
run "$work/a.pcap"
grep -q "gauge state: 0 gauges restored" "$work/tallyd.log" || fail "the first run restored gauges from an empty file"
run "$work/b.pcap"
grep -q "gauge state: 1 gauges restored from the sqlite sink" "$work/tallyd.log" || fail "the second run did not restore q"
got=$(sqlite3 "$work/tally.db" "SELECT window_start_ms - $t * 1000, count, sum, min, max, last FROM tally_counts WHERE key = 'q|g' ORDER BY 1" | tr '\n' ' ')
want="0|3|37.0|10.0|15.0|12.0 60000|2|26.5|13.0|13.5|13.5 " # values 10 15 12, then 13 13.5
[ "$got" = "$want" ] || fail "q|g rows: got '$got', want '$want'"
echo "PASS gauge_restart (rows: $got)"
