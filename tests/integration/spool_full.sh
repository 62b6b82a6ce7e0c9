#!/usr/bin/env bash
# The spool's bound and a full disk, with live traffic over net_memif:
#  C. the SQLite file lives on a 512 KiB tmpfs that fills up: SQLite's "disk
#     full" is an error in `tallyctl sink`, batches go to the spool; the tmpfs
#     is grown, the spool replays, totals exact;
#  D. the database's directory is missing (every write fails at once) while
#     the spool is bounded to 1 MiB: the spool fills (spool_full_refusals, the
#     full alarm), the sink writer keeps the batch, and back-pressure holds the
#     rest in its queue and the worker tables; once the directory exists
#     everything is written, totals exact, no event dropped anywhere
#     (drop_table_full 0, flush_rows_lost 0).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faults_lib.sh"

echo "== C: disk full"
mkdir -p "$work/small"
mount -t tmpfs -o size=512k tmpfs "$work/small" || { echo "SKIP: cannot mount a tmpfs (not root?)"; exit 77; }
on_exit+=("umount '$work/small'")
start_tallyd "$work/c.log" --sqlite_path "$work/small/tally.db" --spool_dir "$work/spool-c" \
  --sqlite_cache_mb 4
start_gen 51 40000 8000
for _ in $(seq 200); do [ "$(stat spool_appended)" -gt 0 ] && break; sleep 0.1; done
[ "$(stat spool_appended)" -gt 0 ] || fail "the full disk sent nothing to the spool"
"$tallyctl" -s "$work/ctl.sock" sink | tee "$work/sink-c.txt"
grep -qi "full\|space" "$work/sink-c.txt" || fail "tallyctl sink does not say the disk is full"
mount -o remount,size=64m "$work/small"
wait_stored 120
stop_tallyd "$work/c.log"
"$check" "$work/expected.tsv" "$work/small/tally.db"
expect_counter "$work/c.log" sink_errors -gt 0
expect_counter "$work/c.log" spool_replayed -gt 0
expect_counter "$work/c.log" flush_rows_lost -eq 0
expect_counter "$work/c.log" drop_table_full -eq 0

echo "== D: the spool at its bound"
start_tallyd "$work/d.log" --sqlite_path "$work/later/d.db" --spool_dir "$work/spool-d" \
  --spool_max_bytes 1048576
start_gen 52 60000 8000
for _ in $(seq 150); do [ "$(stat spool_full_refusals)" -gt 0 ] && break; sleep 0.2; done
[ "$(stat spool_full_refusals)" -gt 0 ] || fail "the spool never reached its bound"
"$tallyctl" -s "$work/ctl.sock" spool | tee "$work/spool-d.txt"
grep -q "full_alarm *yes" "$work/spool-d.txt" || fail "tallyctl spool shows no full alarm"
sleep 2 # back-pressure holds the traffic meanwhile
mkdir "$work/later"
wait_stored 120
stop_tallyd "$work/d.log"
"$check" "$work/expected.tsv" "$work/later/d.db"
expect_counter "$work/d.log" spool_full_refusals -gt 0
expect_counter "$work/d.log" spool_replayed -gt 0
expect_counter "$work/d.log" flush_rows_lost -eq 0
expect_counter "$work/d.log" drop_table_full -eq 0
expect_counter "$work/d.log" drop_duplicate -eq "$(gen_summary "$work/gen.txt" duplicates_sent)"
echo "PASS spool-full"
