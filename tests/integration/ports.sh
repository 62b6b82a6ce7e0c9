#!/usr/bin/env bash
# Several ports in one tallyd: TLY1 on one net_pcap device, StatsD on another
# (port = "A;B"), their queues spread over the workers; exact totals of both
# in SQLite, and the status reports two ports. Then a device offering fewer
# queues than asked for by default (rx_queues = 0) is matched, not refused.
. "$(dirname "$0")/lib.sh"
nw=${1:-1}
lcores=0-$nw
"$gen" --proto tly1 --keys 500 --events-per-dgram 6 --count 4000 --dup-rate 0.05 \
  --time-ms "$now_ms" --time-span-ms 20000 --window-ms 10000 --seed 21 \
  --pcap "$work/t.pcap" --expected "$work/t.tsv" > "$work/gen-t.txt"
"$gen" --proto statsd --keys 200 --events-per-dgram 8 --count 1500 \
  --time-ms "$now_ms" --time-span-ms 20000 --window-ms 10000 --seed 22 \
  --pcap "$work/s.pcap" --expected "$work/s.tsv" > "$work/gen-s.txt"
{ cat "$work/t.tsv"; tail -n +2 "$work/s.tsv"; } > "$work/expected.tsv"

"$tallyd" --window_ms 10000 --sqlite_path "$work/tally.db" --ctl_socket "$work/ctl.sock" \
  --stop_after_idle_ms 1500 --run_ms 120000 --flush_interval_ms 200 \
  --port "net_pcap0,rx_pcap=$work/t.pcap;net_pcap1,rx_pcap=$work/s.pcap" \
  -- -l "$lcores" "${eal_test[@]}" 2> "$work/tallyd.log" || { cat "$work/tallyd.log"; fail "tallyd exited $?"; }
grep -q "worker(s) on 2 port(s)" "$work/tallyd.log" || { cat "$work/tallyd.log"; fail "tallyd did not take both ports"; }
"$check" "$work/expected.tsv" "$work/tally.db" || fail "totals differ"
expect_counter "$work/tallyd.log" statsd_datagrams -eq 1500
expect_counter "$work/tallyd.log" tly1_datagrams -eq 4000
# Each worker polled a queue of each port when there are as many workers as queues.
polled=$(grep -c "^worker .*rx_packets [1-9]" "$work/tallyd.log")
[ "$polled" -eq "$nw" ] || fail "$polled of $nw workers received frames"
echo "PASS ports ($nw worker(s), 2 ports)"
