#!/usr/bin/env bash
# tallyctl drain under live traffic over net_memif:
#  A. the sink up: drain reports what it flushed, every accepted event is in
#     SQLite at that moment (sum of count == events_accepted), the workers take
#     nothing while drained (rx_packets still; memif makes the sender wait),
#     status says drained, tallyd stays up; resume takes the rest of the traffic
#     and the stored totals equal the generator's exactly.
#  B. the sink locked: the drain places everything in the spool (reported as
#     spooled); the lock goes, resume, the spool replays; a second drain, then
#     stop while drained exits cleanly; totals exact again.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faults_lib.sh"
ctl=("$tallyctl" -s "$work/ctl.sock")

# gen SEED COUNT RATE: as start_gen, but a drain of several seconds is not a
# dead receiver (--stall-timeout)
gen() {
  "$gen" --proto tly1 --keys 4000 --events-per-dgram 4 --count "$2" --rate "$3" \
    --dup-rate 0.05 --malformed-rate 0.01 --flows 16 --linger 60 --stall-timeout 120 \
    --time-ms "$now_ms" --time-span-ms 20000 --window-ms 10000 --seed "$1" \
    --port "net_memif0,role=client,socket=$work/memif.sock,socket-abstract=no" \
    --expected "$work/expected.tsv" -- -l 0 "${eal_gen[@]}" > "$work/gen.txt" &
  gpid=$!; pids+=("$gpid")
}

# field JSON PATH: a value of a JSON document (PATH: a.b)
field() { python3 -c 'import json,sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): v = v[k]
print(v)' "$1" "$2"; }

stored_events() { sqlite3 "$1" 'SELECT coalesce(sum(count), 0) FROM tally_counts'; }

hold_lock() {
  python3 - "$1" "$2" <<'PY' &
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
open(sys.argv[1] + ".locked", "w").close()
time.sleep(float(sys.argv[2]))
db.execute("ROLLBACK")
PY
  lpid=$!; pids+=("$lpid")
}

echo "== A: drain with the sink up, then resume"
start_tallyd "$work/a.log" --sqlite_path "$work/a.db" --spool_dir "$work/spool-a"
gen 51 60000 5000
for _ in $(seq 100); do [ "$(stat rx_packets)" -ge 8000 ] && break; sleep 0.1; done
"${ctl[@]}" drain --json > "$work/drain.json" || fail "tallyctl drain exited $?"
cat "$work/drain.json"
[ "$(field "$work/drain.json" rx_packets)" -lt 60000 ] || fail "all traffic was in before the drain"
[ "$(field "$work/drain.json" state)" = drained ] || fail "drain did not end drained"
acc=$(field "$work/drain.json" events_accepted)
[ "$acc" -gt 0 ] || fail "nothing was accepted before the drain"
[ "$(field "$work/drain.json" events_flushed_total)" = "$acc" ] ||
  fail "drain: flushed $(field "$work/drain.json" events_flushed_total) of $acc accepted events"
[ "$(stored_events "$work/a.db")" = "$acc" ] ||
  fail "after the drain SQLite holds $(stored_events "$work/a.db") events, $acc were accepted"
[ "$(field "$work/drain.json" flushed.events)" -gt 0 ] || fail "the drain flushed nothing"
echo "ok: drained: $acc events accepted, all of them in SQLite"
rx1=$(stat rx_packets); sleep 2; rx2=$(stat rx_packets)
[ "$rx1" = "$rx2" ] || fail "workers took traffic while drained ($rx1 -> $rx2)"
[ "$(stat events_accepted)" = "$acc" ] || fail "events accepted while drained"
[ "$(stat ctl_drained)" = 1 ] || fail "ctl_drained is not 1 while drained"
"${ctl[@]}" status | grep -q '^state  *drained' || fail "status does not say drained"
"${ctl[@]}" drain status | grep -q '^drained in' || fail "drain status does not report"
kill -0 "$tpid" || fail "tallyd exited on drain"
echo "ok: nothing taken for 2 s while drained; status says drained"
"${ctl[@]}" resume > /dev/null || fail "resume exited $?"
[ "$(stat ctl_drained)" = 0 ] || fail "ctl_drained is not 0 after resume"
wait_sent 60000
wait_stored 90
stop_tallyd "$work/a.log"
grep -E 'drain|resume' "$work/a.log"
"$check" "$work/expected.tsv" "$work/a.db"
expect_counter "$work/a.log" flush_rows_lost -eq 0
expect_counter "$work/a.log" drop_duplicate -eq "$(gen_summary "$work/gen.txt" duplicates_sent)"

echo "== B: drain with the sink locked (spool), resume, drain again, stop while drained"
sqlite3 "$work/b.db" 'PRAGMA journal_mode=WAL;' > /dev/null
start_tallyd "$work/b.log" --sqlite_path "$work/b.db" --spool_dir "$work/spool-b"
hold_lock "$work/b.db" 600
for _ in $(seq 100); do [ -e "$work/b.db.locked" ] && break; sleep 0.1; done
[ -e "$work/b.db.locked" ] || fail "could not lock the database"
gen 52 30000 5000
for _ in $(seq 100); do [ "$(stat rx_packets)" -ge 8000 ] && break; sleep 0.1; done
"${ctl[@]}" drain --json --timeout 60 > "$work/drain-b.json" || fail "tallyctl drain exited $?"
cat "$work/drain-b.json"
acc=$(field "$work/drain-b.json" events_accepted)
[ "$(field "$work/drain-b.json" events_flushed_total)" = "$acc" ] || fail "drain left events behind"
[ "$(field "$work/drain-b.json" spooled)" -gt 0 ] || fail "nothing was spooled with the sink locked"
[ "$(field "$work/drain-b.json" spool_records)" -gt 0 ] || fail "the spool is empty"
echo "ok: drained into the spool: $(field "$work/drain-b.json" spooled) batch parts"
kill "$lpid"; wait "$lpid" 2>/dev/null || true
"${ctl[@]}" spool replay > /dev/null
"${ctl[@]}" resume > /dev/null
wait_sent 30000
wait_stored 90
"${ctl[@]}" drain > "$work/drain-b2.txt" || fail "second drain exited $?"
cat "$work/drain-b2.txt"
grep -q '^drained in' "$work/drain-b2.txt" || fail "second drain did not report"
stop_tallyd "$work/b.log"
"$check" "$work/expected.tsv" "$work/b.db"
expect_counter "$work/b.log" spool_replayed -gt 0
expect_counter "$work/b.log" flush_rows_lost -eq 0
echo "PASS drain"
