#!/usr/bin/env bash
# The raw-event archive and tally-recount, end to end: tallyd replays TLY1 and
# StatsD captures (duplicates, malformed datagrams, IPv6, VLANs) with the
# archive on, 1-second segments. Then:
#  - tallyctl archive shows it on, with segments and datagrams, while it runs;
#  - archive_datagrams equals the datagrams the parsers saw, nothing dropped;
#  - tally-recount over the whole range at the same window gives exactly the
#    live totals (and the generator's), at 5 s windows exactly the generator's
#    totals for 5 s, and with a rule dropping the keys ending in 3 the totals
#    less that family;
#  - a corrupt block and a torn tail are reported and skipped, the rest counts;
#  - tally-archive2pcap rebuilds the frames (Ethernet, IPv4/IPv6, UDP with its
#    checksum): tallyd replaying that capture counts exactly the same totals.
. "$(dirname "$0")/lib.sh"
recount=$build/ctrlplane/tally-recount
topts=(--proto tly1 --keys 3000 --dist zipf --events-per-dgram 6 --count 12000 --dup-rate 0.05
       --malformed-rate 0.02 --ipv6-share 0.2 --vlan-share 0.2 --time-ms "$now_ms"
       --time-span-ms 40000 --seed 21)
sopts=(--proto statsd --keys 400 --events-per-dgram 12 --count 3000 --malformed-rate 0.05
       --time-ms "$now_ms" --time-span-ms 40000 --seed 22)
"$gen" "${topts[@]}" --window-ms 10000 --pcap "$work/t.pcap" --expected "$work/t10.tsv" > "$work/gen-t.txt"
"$gen" "${sopts[@]}" --window-ms 10000 --pcap "$work/s.pcap" --expected "$work/s10.tsv" > /dev/null
# The same traffic's totals at 5 s windows (the captures are the same: thrown away).
"$gen" "${topts[@]}" --window-ms 5000 --pcap "$work/x.pcap" --expected "$work/t5.tsv" > /dev/null
"$gen" "${sopts[@]}" --window-ms 5000 --pcap "$work/x.pcap" --expected "$work/s5.tsv" > /dev/null
cmp -s "$work/t.pcap" "$work/x.pcap" && fail "control: the 5 s capture should be the StatsD one"
{ cat "$work/t10.tsv"; tail -n +2 "$work/s10.tsv"; } > "$work/e10.tsv"
{ cat "$work/t5.tsv"; tail -n +2 "$work/s5.tsv"; } > "$work/e5.tsv"

"$tallyd" --window_ms 10000 --sqlite_path "$work/tally.db" --ctl_socket "$work/ctl.sock" \
  --stop_after_idle_ms 4000 --run_ms 120000 --dedup_capacity 1048576 --table_rows 131072 \
  --flush_interval_ms 200 --rx_queues 2 --archive_dir "$work/archive" --archive_segment_ms 1000 \
  --port "net_pcap0,rx_pcap=$work/t.pcap,rx_pcap=$work/s.pcap" \
  -- -l 0-1 "${eal_test[@]}" 2> "$work/tallyd.log" &
tpid=$!; pids+=("$tpid")
for _ in $(seq 300); do
  "$tallyctl" -s "$work/ctl.sock" archive --json > "$work/arch.json" 2>/dev/null &&
    python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); sys.exit(not (a["datagrams"] > 0 and a["segments"] > 0))' "$work/arch.json" && break
  sleep 0.1
done
cat "$work/arch.json"
python3 - "$work/arch.json" "$now_ms" <<'P' || fail "tallyctl archive: wrong state"
import json, sys
a = json.load(open(sys.argv[1]))
assert a["state"] == "on", a
assert a["segments"] >= 1 and a["bytes"] > 0 and a["datagrams"] > 0, a
assert abs(a["oldest_ms"] - int(sys.argv[2])) < 600000, a
assert a["newest_ms"] >= a["oldest_ms"], a
assert a["dropped_ring_full"] == 0 and a["dropped_disk"] == 0, a
P
echo "ok: tallyctl archive while running"
wait "$tpid" || { cat "$work/tallyd.log"; fail "tallyd exited with an error"; }
"$check" "$work/e10.tsv" "$work/tally.db"
parsed=$(awk '$1 ~ /^tly1_/ && $1 != "tly1_ack_unsent" { s += $2 } $1 == "statsd_datagrams" { s += $2 }
  END { print s + 0 }' "$work/tallyd.log")
grep -E "^(rx_packets|drop_|tly1_|statsd_datagrams|archive_)" "$work/tallyd.log" | grep -v " 0  "
expect_counter "$work/tallyd.log" archive_datagrams -eq "$parsed"
expect_counter "$work/tallyd.log" archive_ring_full -eq 0
expect_counter "$work/tallyd.log" archive_dropped_disk -eq 0
ls "$work/archive" | grep -c '^seg-' > "$work/nseg"
echo "ok: $(cat "$work/nseg") segments"

# Same window: exactly the live rows. The recount's table keeps the sketches of
# the capture's ~1,200 timer rows (sketch_rows slabs; the default 256 would
# write a batch each time 7/8 of them are taken: same totals, more batches).
"$recount" --archive "$work/archive" --from 0 --to 99999999999999 --sqlite_path "$work/r10.db" \
  --sketch_rows 4096 2> "$work/r10.log" || { cat "$work/r10.log"; fail "tally-recount failed"; }
cat "$work/r10.log"
"$check" "$work/e10.tsv" "$work/r10.db"
dump() { sqlite3 "$1" "SELECT key, window_start_ms, window_ms, count, sum, min, max FROM tally_counts ORDER BY 1, 2, 3"; }
[ "$(dump "$work/tally.db")" = "$(dump "$work/r10.db")" ] || fail "recount rows differ from the live rows"
grep -q "^batches 1$" "$work/r10.log" || fail "recount: batches"
[ "$(sqlite3 "$work/r10.db" "SELECT count(*) FROM tally_batches WHERE appliance LIKE 'recount-%'")" -ge 1 ] ||
  fail "recount batches are not under a recount-<time> appliance id"
expect_counter "$work/r10.log" drop_duplicate -eq "$(counter "$work/tallyd.log" drop_duplicate)"
echo "ok: recount at the live window equals the live totals"

# Another window: the generator's totals at 5 s.
"$recount" --archive "$work/archive" --from 0 --to 99999999999999 --window-ms 5000 \
  --sqlite_path "$work/r5.db" --appliance r5 2> "$work/r5.log" || { cat "$work/r5.log"; fail "recount 5 s"; }
"$check" "$work/e5.tsv" "$work/r5.db"
[ "$(sqlite3 "$work/r5.db" "SELECT DISTINCT window_ms FROM tally_counts")" = 5000 ] || fail "5 s windows"
echo "ok: recount at 5 s windows equals the generator's 5 s totals"

# Corrected rules: a key family dropped.
printf 'drop /^tally\\.\\d*3$/\n' > "$work/drop.rules"
"$recount" --archive "$work/archive" --from 0 --to 99999999999999 --rules "$work/drop.rules" \
  --sqlite_path "$work/rr.db" 2> "$work/rr.log" || { cat "$work/rr.log"; fail "recount with rules"; }
awk -F'\t' 'NR == 1 || $1 !~ /^tally\.[0-9]*3$/' "$work/e10.tsv" > "$work/ruled.tsv"
dropped=$(awk -F'\t' 'NR > 1 && $1 ~ /^tally\.[0-9]*3$/ { n += $4 } END { print n + 0 }' "$work/e10.tsv")
[ "$dropped" -gt 0 ] || fail "the dropped family had no events: the test proves nothing"
"$check" "$work/ruled.tsv" "$work/rr.db"
expect_counter "$work/rr.log" rules_dropped -ge "$dropped"

# Damage: a corrupt block in the first segment, a torn tail in the last.
cp -r "$work/archive" "$work/damaged"
first=$(ls "$work/damaged"/seg-* | head -1); last=$(ls "$work/damaged"/seg-* | tail -1)
printf '\xff\xff\xff\xff' | dd of="$first" bs=1 seek=50 conv=notrunc status=none
truncate -s -5 "$last"
"$recount" --archive "$work/damaged" --from 0 --to 99999999999999 --sqlite_path "$work/rd.db" \
  2> "$work/rd.log" || { cat "$work/rd.log"; fail "recount of a damaged archive failed"; }
grep "^archive: segment" "$work/rd.log"
grep -q "corrupt block (data checksum): skipped" "$work/rd.log" || fail "corrupt block not reported"
grep -q "torn tail: block cut short" "$work/rd.log" || fail "torn tail not reported"
grep -q "^corrupt_blocks 1$" "$work/rd.log" || fail "corrupt_blocks"
grep -q "^torn_tails 1$" "$work/rd.log" || fail "torn_tails"
got=$(sqlite3 "$work/rd.db" "SELECT sum(count) FROM tally_counts")
all=$(sqlite3 "$work/r10.db" "SELECT sum(count) FROM tally_counts")
[ "$got" -gt 0 ] && [ "$got" -lt "$all" ] || fail "damaged recount: $got events of $all"
echo "ok: damaged archive: $got of $all events recounted, the damage reported"
# The archive as a capture, replayed through tallyd's own frame parser.
"$build/ctrlplane/tally-archive2pcap" --archive "$work/archive" --out "$work/a.pcap" \
  2> "$work/a2p.log" || { cat "$work/a2p.log"; fail "tally-archive2pcap failed"; }
cat "$work/a2p.log"
grep -q "15000 packets" "$work/a2p.log" || fail "tally-archive2pcap: not 15000 packets"
"$tallyd" --window_ms 10000 --sqlite_path "$work/p.db" --ctl_socket "$work/ctl2.sock" \
  --stop_after_idle_ms 1500 --run_ms 120000 --dedup_capacity 1048576 --table_rows 131072 \
  --port "net_pcap0,rx_pcap=$work/a.pcap" -- -l 0-1 "${eal_test[@]}" 2> "$work/tallyd2.log" ||
  { cat "$work/tallyd2.log"; fail "tallyd on the converted capture"; }
"$check" "$work/e10.tsv" "$work/p.db"
for c in drop_udp_csum drop_ip_csum drop_ip_hdr drop_udp_len; do
  expect_counter "$work/tallyd2.log" "$c" -eq 0
done
echo "ok: the converted capture counts exactly the live totals"
echo "PASS archive and recount"
