#!/usr/bin/env bash
# The SQLite sink under faults, with live traffic over net_memif:
#  A. the database directory is missing at start, then created; later another
#     process holds the write lock for 7 s: clear errors in `tallyctl sink`,
#     batches spooled and replayed, totals exact, nothing lost;
#  B. the database stays locked, every batch goes to the spool, tallyd is
#     SIGKILLed, one spool record is corrupted on disk; after a restart the
#     corrupt record is reported and skipped, the rest replays exactly once:
#     the stored rows plus the corrupt record's rows (dumped before) are
#     exactly the generator's totals.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faults_lib.sh"
spool_tool=$build/ctrlplane/tally-spool

# hold_lock DB SECONDS: another writer holds SQLite's write lock (returns once
# it does: on a loaded machine the interpreter alone can take seconds to start)
hold_lock() {
  rm -f "$work/locked"
  python3 - "$1" "$2" "$work/locked" <<'PY' &
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
open(sys.argv[3], "w").close()
time.sleep(float(sys.argv[2]))
db.execute("ROLLBACK")
PY
  lpid=$!; pids+=("$lpid")
  for _ in $(seq 600); do [ -e "$work/locked" ] && return 0; sleep 0.05; done
  fail "the lock holder did not take the lock"
}

echo "== A: missing directory, then a held lock"
start_tallyd "$work/a.log" --sqlite_path "$work/db/tally.db" --spool_dir "$work/spool-a"
start_gen 31 60000 5000
sleep 2
"$tallyctl" -s "$work/ctl.sock" sink > "$work/sink.txt"
grep -q "$work/db/tally.db" "$work/sink.txt" || { cat "$work/sink.txt"; fail "tallyctl sink does not name the missing database"; }
echo "ok: tallyctl sink says: $(grep -m1 -o 'cannot open[^"]*' "$work/sink.txt" || grep -m1 error "$work/sink.txt")"
[ "$(stat spool_appended)" -gt 0 ] || fail "nothing was spooled while the directory was missing"
mkdir "$work/db"
sleep 2
hold_lock "$work/db/tally.db" 7
wait "$lpid"
wait_stored 90
stop_tallyd "$work/a.log"
cat "$work/gen.txt" "$work/a.log"
"$check" "$work/expected.tsv" "$work/db/tally.db"
expect_counter "$work/a.log" sink_errors -gt 0
expect_counter "$work/a.log" spool_replayed -gt 0
expect_counter "$work/a.log" flush_rows_lost -eq 0
expect_counter "$work/a.log" drop_table_full -eq 0
expect_counter "$work/a.log" drop_duplicate -eq "$(gen_summary "$work/gen.txt" duplicates_sent)"

echo "== B: everything spooled, SIGKILL, a corrupt record, restart"
rm -rf "$work/db"; mkdir "$work/db"
start_tallyd "$work/b.log" --sqlite_path "$work/db/b.db" --spool_dir "$work/spool-b"
hold_lock "$work/db/b.db" 600
start_gen 32 16000 8000
for _ in $(seq 300); do
  [ "$(stat rx_packets)" -ge 16000 ] && break; sleep 0.1
done
# every accepted event in the spool: a drain returns once every batch is
# placed (the sink is locked, so appended to the spool and fsync'd). Polling
# the counters for a quiet second instead let CI kill tallyd with a batch
# still to be spooled.
"$tallyctl" -s "$work/ctl.sock" drain --timeout 60 || fail "the drain did not complete"
kill -9 "$tpid"; wait "$tpid" 2>/dev/null || true
kill "$lpid"; wait "$lpid" 2>/dev/null || true
wait "$gpid" 2>/dev/null || true
# What the restart will replay is what the spool holds after the kill: a flush
# tick may still append between a count read over the socket and the kill (CI
# counted 6 there and the spool held 7).
"$spool_tool" "$work/spool-b/sqlite" > "$work/spool-b.txt" 2>&1
cat "$work/spool-b.txt"
records=$(sed -n 's/^tally-spool: \([0-9]*\) batches.*/\1/p' "$work/spool-b.txt")
[ "${records:-0}" -ge 3 ] || fail "expected at least 3 spooled batches, got ${records:-none}"
# corrupt the second record's payload; keep its rows to account for them
seq=$(python3 - "$work/spool-b/sqlite" <<'PY'
import glob, struct, sys
seg = sorted(glob.glob(sys.argv[1] + "/seg-*.tsp"))[0]
data = bytearray(open(seg, "rb").read())
off, n = 0, 0
while off + 24 <= len(data):
    magic, ln = data[off:off + 4], struct.unpack_from("<I", data, off + 4)[0]
    assert magic == b"TSR1", "not a record at %d" % off
    if n == 1:
        p = off + 24
        alen = struct.unpack_from("<H", data, p + 6)[0]
        seq = struct.unpack_from("<Q", data, p + 8 + alen)[0]
        data[p + ln // 2] ^= 0x40
        open(seg + ".flipped", "wb").write(data)
        print(seq)
        break
    off, n = off + 24 + ln, n + 1
PY
)
[ -n "$seq" ] || fail "no second record found"
"$spool_tool" "$work/spool-b/sqlite" --rows --seq "$seq" > "$work/corrupt.tsv"
seg=$(ls "$work"/spool-b/sqlite/seg-*.tsp | head -n 1)
mv "$seg.flipped" "$seg"
echo "corrupted batch $seq ($(($(wc -l < "$work/corrupt.tsv") - 1)) rows)"
start_tallyd "$work/b2.log" --sqlite_path "$work/db/b.db" --spool_dir "$work/spool-b"
for _ in $(seq 300); do [ "$(stat spool_records)" = 0 ] && break; sleep 0.2; done
[ "$(stat spool_records)" = 0 ] || fail "the spool did not drain after the restart"
"$tallyctl" -s "$work/ctl.sock" spool
"$tallyctl" -s "$work/ctl.sock" stop > /dev/null; wait "$tpid" || fail "tallyd exited with an error"
cat "$work/b2.log"
expect_counter "$work/b2.log" spool_corrupt -eq 1
expect_counter "$work/b2.log" spool_replayed -eq $((records - 1))
grep -q "corrupt\|failed its check" "$work/b2.log" || fail "the corrupt record was not reported"
# stored rows + the corrupt record's rows == expected, exactly
cp "$work/db/b.db" "$work/merged.db"
python3 - "$work/merged.db" "$work/corrupt.tsv" <<'PY'
import csv, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = csv.reader(open(sys.argv[2]), delimiter="\t")
next(rows)
db.executemany("""INSERT INTO tally_counts(key, window_start_ms, window_ms, count, sum, min, max, last)
  VALUES(?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT(key, window_start_ms, window_ms) DO UPDATE SET
  count = count + excluded.count, sum = sum + excluded.sum,
  min = min(min, excluded.min), max = max(max, excluded.max)""",
  [(r[0], int(r[1]), int(r[2]), int(r[3]), float(r[4]), float(r[5]), float(r[6])) for r in rows])
db.commit()
PY
"$check" "$work/expected.tsv" "$work/merged.db"
echo "PASS sqlite-faults"
