#!/usr/bin/env bash
# tally-gen captures (TLY1 with duplicates and malformed datagrams, StatsD)
# replayed through net_pcap into tallyd with the PostgreSQL sink, on a private
# server: the rows in PostgreSQL must equal the expected totals exactly.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"
pg_available || { echo "SKIP: no PostgreSQL 15 (deploy/install-deps.sh installs it)"; exit 77; }
pg_start pg off

"$gen" --proto tly1 --keys 3000 --dist zipf --events-per-dgram 6 --count 12000 \
  --dup-rate 0.05 --malformed-rate 0.02 --time-ms "$now_ms" --time-span-ms 40000 \
  --window-ms 10000 --seed 21 --pcap "$work/t.pcap" --expected "$work/t.tsv" > "$work/gen-t.txt"
"$gen" --proto statsd --keys 400 --events-per-dgram 12 --count 3000 --malformed-rate 0.05 \
  --time-ms "$now_ms" --time-span-ms 40000 --window-ms 10000 --seed 22 \
  --pcap "$work/s.pcap" --expected "$work/s.tsv" > "$work/gen-s.txt"
{ cat "$work/t.tsv"; tail -n +2 "$work/s.tsv"; } > "$work/expected.tsv"

"$tallyd" --window_ms 10000 --sink postgres --pg_conninfo "$(pg_conninfo pg)" \
  --ctl_socket "$work/ctl.sock" --stop_after_idle_ms 1500 --run_ms 120000 \
  --dedup_capacity 1048576 --table_rows 131072 --flush_interval_ms 200 --rx_queues 2 \
  --port "net_pcap0,rx_pcap=$work/t.pcap,rx_pcap=$work/s.pcap" \
  -- -l 0-1 "${eal_test[@]}" 2> "$work/tallyd.log" || { cat "$work/tallyd.log"; fail "tallyd exited $?"; }
cat "$work/tallyd.log"
if grep -q "$pg_password" "$work/tallyd.log"; then fail "tallyd printed the password"; fi

"$check" "$work/expected.tsv" --pg "$(pg_conninfo pg)"
expect_counter "$work/tallyd.log" drop_duplicate -eq "$(gen_summary "$work/gen-t.txt" duplicates_sent)"
expect_counter "$work/tallyd.log" sink_errors -eq 0
expect_counter "$work/tallyd.log" drop_table_full -eq 0
echo "PASS pg"
