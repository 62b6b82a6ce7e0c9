#!/usr/bin/env bash
# tally-recount --replace, end to end: tallyd counts TLY1 and StatsD captures
# (duplicates, malformed datagrams, IPv6) at 2 s windows with the archive on;
# then a recount with a rule dropping the keys ending in 3 replaces the live
# rows of two windows in the middle:
#  - refused while those windows can still take events (lateness), for a range
#    that is not window bounds, with lateness off, and on an empty archive;
#  - after: every row of the two windows is the recount's (exactly the
#    generator's totals less that family), every other window's rows are the
#    live ones byte for byte, one tally_batches row per replaced window;
#  - a second replace (another appliance id) gives the same rows, not twice
#    them: a replace is not additive;
#  - the same on PostgreSQL (its live rows written by a plain recount, which
#    the archive test proves equal to tallyd's), and Redis is refused by name.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"
. "$(dirname "$0")/redis_lib.sh"
recount=$build/ctrlplane/tally-recount
W=2000; late=30000
# Event times 24..16 s ago: within lateness when they arrive, and their windows
# close (to + lateness + 2 flushes + 5 s) some 20 s after the start.
t0=$(( now_ms - 24000 ))
"$gen" --proto tly1 --keys 2000 --dist zipf --events-per-dgram 6 --count 8000 --dup-rate 0.05 \
  --malformed-rate 0.02 --ipv6-share 0.2 --time-ms "$t0" --time-span-ms 8000 --seed 31 \
  --window-ms "$W" --pcap "$work/t.pcap" --expected "$work/t.tsv" > /dev/null
"$gen" --proto statsd --keys 300 --events-per-dgram 12 --count 2000 --malformed-rate 0.05 \
  --time-ms "$t0" --time-span-ms 8000 --seed 32 --window-ms "$W" --pcap "$work/s.pcap" \
  --expected "$work/s.tsv" > /dev/null
{ cat "$work/t.tsv"; tail -n +2 "$work/s.tsv"; } > "$work/e.tsv"

"$tallyd" --window_ms "$W" --lateness_ms "$late" --sqlite_path "$work/tally.db" \
  --ctl_socket "$work/ctl.sock" --stop_after_idle_ms 1500 --run_ms 120000 \
  --dedup_capacity 1048576 --table_rows 131072 --sketch_rows 4096 --flush_interval_ms 200 --rx_queues 2 \
  --archive_dir "$work/archive" --archive_segment_ms 1000 \
  --port "net_pcap0,rx_pcap=$work/t.pcap,rx_pcap=$work/s.pcap" \
  -- -l 0-1 "${eal_test[@]}" 2> "$work/tallyd.log" || { cat "$work/tallyd.log"; fail "tallyd"; }
"$check" "$work/e.tsv" "$work/tally.db"
expect_counter "$work/tallyd.log" drop_late -eq 0
echo "ok: live totals"

# The windows: replace the 2nd and 3rd of those holding events.
mapfile -t wins < <(awk -F'\t' 'NR > 1 { print $2 }' "$work/e.tsv" | sort -nu)
[ "${#wins[@]}" -ge 4 ] || fail "only ${#wins[@]} windows: the test needs some on both sides"
from=${wins[1]}; to=$(( wins[2] + W ))
family='^tally\.[0-9]*3$'
printf 'drop /^tally\\.\\d*3$/\n' > "$work/drop.rules"
awk -F'\t' -v f="$from" -v t="$to" -v fam="$family" \
  'NR == 1 || $2 < f || $2 >= t || $1 !~ fam' "$work/e.tsv" > "$work/fixed.tsv"
dropped=$(awk -F'\t' -v f="$from" -v t="$to" -v fam="$family" \
  'NR > 1 && $2 >= f && $2 < t && $1 ~ fam { n += $4 } END { print n + 0 }' "$work/e.tsv")
[ "$dropped" -gt 0 ] || fail "the dropped family had no events in the range: the test proves nothing"
# sketch_rows: room for the captures' timer and set rows (the default 256 slabs
# would be used up: a recount that cannot keep a row's sketch refuses to replace)
rc_args=(--archive "$work/archive" --window_ms "$W" --lateness_ms "$late" --flush_interval_ms 200
         --dedup_capacity 1048576 --table_rows 131072 --sketch_rows 4096 --rules "$work/drop.rules"
         --replace)
outside() { sqlite3 "$1" "SELECT * FROM tally_counts WHERE window_start_ms < $from OR window_start_ms >= $to ORDER BY 1, 2, 3"; }
outside "$work/tally.db" > "$work/outside.before"
[ -s "$work/outside.before" ] || fail "no rows outside the range"

# Refusals: open windows, a range off the window bounds, lateness off, Redis,
# an empty archive.
if "$recount" "${rc_args[@]}" --from "$from" --to "$to" --sqlite_path "$work/tally.db" 2> "$work/r0.log"; then
  closed=$(( to + late + 400 + 5000 ))
  [ "$(date +%s%3N)" -ge "$closed" ] || fail "--replace ran on windows that were still open"
else
  grep "still take events" "$work/r0.log" || { cat "$work/r0.log"; fail "open windows: wrong refusal"; }
fi
"$recount" "${rc_args[@]}" --from $(( from + 1 )) --to "$to" --sqlite_path "$work/tally.db" 2> "$work/r1.log" &&
  fail "--replace took a range off the window bounds"
grep -q "must be window bounds" "$work/r1.log" || { cat "$work/r1.log"; fail "bounds: wrong refusal"; }
"$recount" "${rc_args[@]}" --lateness_ms 0 --from "$from" --to "$to" --sqlite_path "$work/tally.db" \
  2> "$work/r2.log" && fail "--replace ran with lateness off"
grep -q "lateness_ms and future_ms must be on" "$work/r2.log" || { cat "$work/r2.log"; fail "lateness: wrong refusal"; }
if command -v redis-server > /dev/null; then
  rp=$(free_port); redis_start "$work/redis" "$rp"
  "$recount" "${rc_args[@]}" --from "$from" --to "$to" --sink redis --redis_addr "127.0.0.1:$rp" \
    2> "$work/r3.log" && fail "--replace ran on Redis"
  grep -q "sink redis cannot replace" "$work/r3.log" || { cat "$work/r3.log"; fail "redis: wrong refusal"; }
  [ "$(redis-cli -h 127.0.0.1 -p "$rp" dbsize)" = 0 ] || fail "a refused replace wrote to Redis"
fi
mkdir -p "$work/empty"
"$recount" "${rc_args[@]}" --archive "$work/empty" --from "$from" --to "$to" \
  --sqlite_path "$work/tally.db" 2> "$work/r4.log" && fail "--replace ran on an empty archive"
grep -q "has no segments" "$work/r4.log" || { cat "$work/r4.log"; fail "empty archive: wrong refusal"; }
[ "$(outside "$work/tally.db")" = "$(cat "$work/outside.before")" ] || fail "a refused replace changed rows"
"$check" "$work/e.tsv" "$work/tally.db"
echo "ok: refusals name the reason and change nothing"

# Wait until tallyd could no longer add to those windows, then replace.
closed=$(( to + late + 400 + 5000 ))
while [ "$(date +%s%3N)" -lt "$closed" ]; do sleep 0.5; done
"$recount" "${rc_args[@]}" --from "$from" --to "$to" --sqlite_path "$work/tally.db" \
  --appliance fix1 2> "$work/r.log" || { cat "$work/r.log"; fail "recount --replace"; }
cat "$work/r.log"
"$check" "$work/fixed.tsv" "$work/tally.db"
[ "$(outside "$work/tally.db")" = "$(cat "$work/outside.before")" ] || fail "rows outside the range changed"
grep -q "^replaced_windows 2$" "$work/r.log" || fail "replaced_windows is not 2"
grep -q "warning: the archive starts at" "$work/r.log" ||
  fail "no warning that the archive starts after from - future_ms"
grep -q "tally-recount: \[#*\] chunk 1/1, " "$work/r.log" || fail "no progress line for the chunk"
[ "$(sqlite3 "$work/tally.db" "SELECT count(*) FROM tally_batches WHERE appliance = 'fix1'")" = 2 ] ||
  fail "not one tally_batches row per replaced window"
expect_counter "$work/r.log" rules_dropped -ge "$dropped"
echo "ok: sqlite: the two windows hold the corrected totals, the others are untouched"

"$recount" "${rc_args[@]}" --from "$from" --to "$to" --sqlite_path "$work/tally.db" \
  --appliance fix2 2> "$work/r2b.log" || { cat "$work/r2b.log"; fail "second replace"; }
"$check" "$work/fixed.tsv" "$work/tally.db"
echo "ok: a second replace gives the same rows"

if pg_available; then
  pg_start pg off
  conn=$(pg_conninfo pg)
  "$recount" "${rc_args[@]/--replace/--appliance=live}" --rules '' --from 0 --to 99999999999999 \
    --sink postgres --pg_conninfo "$conn" 2> "$work/p0.log" || { cat "$work/p0.log"; fail "pg: plain recount"; }
  "$check" "$work/e.tsv" --pg "$conn"
  "$recount" "${rc_args[@]}" --from "$from" --to "$to" --sink postgres --pg_conninfo "$conn" \
    --appliance fix1 2> "$work/p1.log" || { cat "$work/p1.log"; fail "pg: recount --replace"; }
  "$check" "$work/fixed.tsv" --pg "$conn"
  [ "$(pg_psql pg "SELECT count(*) FROM tally_batches WHERE appliance = 'fix1'")" = 2 ] ||
    fail "pg: not one tally_batches row per replaced window"
  echo "ok: postgres: the two windows hold the corrected totals, the others are untouched"
else
  echo "SKIP part: no PostgreSQL 15"
fi
echo "PASS recount --replace"
