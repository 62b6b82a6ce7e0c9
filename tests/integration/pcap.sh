#!/usr/bin/env bash
# tally-gen writes captures with duplicates and malformed datagrams (TLY1 and
# StatsD, IPv4/IPv6/VLAN frames, several windows); tallyd replays them through
# net_pcap; the SQLite rows must equal the expected totals exactly, and the drop
# counters must show the duplicates and malformed datagrams.
. "$(dirname "$0")/lib.sh"

"$gen" --proto tly1 --keys 3000 --dist zipf --events-per-dgram 6 --count 12000 \
  --dup-rate 0.05 --malformed-rate 0.02 --ipv6-share 0.2 --vlan-share 0.2 \
  --time-ms "$now_ms" --time-span-ms 40000 --window-ms 10000 --seed 11 \
  --pcap "$work/t.pcap" --expected "$work/t.tsv" > "$work/gen-t.txt"
"$gen" --proto statsd --keys 400 --events-per-dgram 12 --count 3000 \
  --malformed-rate 0.05 --time-ms "$now_ms" --time-span-ms 40000 --window-ms 10000 \
  --seed 12 --pcap "$work/s.pcap" --expected "$work/s.tsv" > "$work/gen-s.txt"
{ cat "$work/t.tsv"; tail -n +2 "$work/s.tsv"; } > "$work/expected.tsv"

"$tallyd" --window_ms 10000 --sqlite_path "$work/tally.db" --ctl_socket "$work/ctl.sock" \
  --stop_after_idle_ms 1500 --run_ms 120000 --dedup_capacity 1048576 --table_rows 131072 \
  --flush_interval_ms 200 --rx_queues 2 \
  --port "net_pcap0,rx_pcap=$work/t.pcap,rx_pcap=$work/s.pcap" \
  -- -l 0-1 "${eal_test[@]}" 2> "$work/tallyd.log" || { cat "$work/tallyd.log"; fail "tallyd exited $?"; }
cat "$work/tallyd.log"

"$check" "$work/expected.tsv" "$work/tally.db"
expect_counter "$work/tallyd.log" drop_duplicate -eq "$(gen_summary "$work/gen-t.txt" duplicates_sent)"
malformed=$(gen_summary "$work/gen-t.txt" malformed_datagrams)
rejected=$(awk '$1 ~ /^tly1_/ && $1 != "tly1_datagrams" { s += $2 } END { print s + 0 }' "$work/tallyd.log")
[ "$rejected" -eq "$malformed" ] || fail "tly1 rejections $rejected != malformed sent $malformed"
echo "ok: $rejected malformed TLY1 datagrams rejected"
expect_counter "$work/tallyd.log" statsd_datagrams -eq 3000
expect_counter "$work/tallyd.log" sink_errors -eq 0
expect_counter "$work/tallyd.log" drop_table_full -eq 0
bad_lines=$(awk '$1 ~ /^statsd_/ && $1 !~ /^statsd_(datagrams|lines)$/ { s += $2 } END { print s + 0 }' "$work/tallyd.log")
[ "$bad_lines" -gt 0 ] || fail "no bad StatsD lines were counted"
echo "ok: $bad_lines bad StatsD lines counted"
echo "PASS pcap"
