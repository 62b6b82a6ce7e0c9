#!/usr/bin/env bash
# A full disk under the archive is an alarm, not a crash, and never costs a
# count: tallyd archives to a 256 KiB tmpfs mounted by this test (umounted on
# exit) while it replays ~1 MB of archive's worth of traffic. tallyctl archive
# must show it paused with the reason; the totals must still be exactly the
# generator's; every datagram is either archived or counted as dropped from the
# archive; and what was archived reads back whole (no torn block).
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: mounting a tmpfs needs root"; exit 77; }
recount=$build/ctrlplane/tally-recount
mkdir "$work/full"
mount -t tmpfs -o size=256k tmpfs "$work/full" || { echo "SKIP: cannot mount a tmpfs"; exit 77; }
on_exit+=("umount '$work/full'")

"$gen" --proto tly1 --keys 3000 --events-per-dgram 6 --count 15000 --dup-rate 0.05 \
  --time-ms "$now_ms" --time-span-ms 40000 --window-ms 10000 --seed 31 \
  --pcap "$work/t.pcap" --expected "$work/t.tsv" > "$work/gen.txt"
"$tallyd" --window_ms 10000 --sqlite_path "$work/tally.db" --ctl_socket "$work/ctl.sock" \
  --stop_after_idle_ms 3000 --run_ms 120000 --dedup_capacity 1048576 --table_rows 131072 \
  --flush_interval_ms 200 --archive_dir "$work/full/archive" --archive_segment_ms 1000 \
  --port "net_pcap0,rx_pcap=$work/t.pcap" -- -l 0-1 "${eal_test[@]}" 2> "$work/tallyd.log" &
tpid=$!; pids+=("$tpid")
state=""
for _ in $(seq 300); do
  "$tallyctl" -s "$work/ctl.sock" archive --json > "$work/arch.json" 2>/dev/null &&
    state=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["state"])' "$work/arch.json") &&
    [ "$state" = paused ] && break
  sleep 0.1
done
cat "$work/arch.json"
[ "$state" = paused ] || fail "tallyctl archive never showed the archive paused"
grep -q '"alarm": ".*No space left on device' "$work/arch.json" || fail "the alarm does not say why"
echo "ok: tallyctl archive shows it paused, with the reason"
wait "$tpid" || { cat "$work/tallyd.log"; fail "tallyd exited with an error"; }
"$check" "$work/t.tsv" "$work/tally.db"
expect_counter "$work/tallyd.log" archive_disk_full -ge 1
expect_counter "$work/tallyd.log" archive_dropped_disk -gt 0
expect_counter "$work/tallyd.log" archive_ring_full -eq 0
archived=$(counter "$work/tallyd.log" archive_datagrams)
lost=$(counter "$work/tallyd.log" archive_dropped_disk)
[ $((archived + lost)) -eq 15000 ] || fail "archived $archived + dropped $lost != 15000 datagrams"
echo "ok: $archived archived + $lost dropped from the archive = 15000; counting went on"
"$recount" --archive "$work/full/archive" --from 0 --to 99999999999999 \
  --sqlite_path "$work/r.db" 2> "$work/r.log" || { cat "$work/r.log"; fail "recount failed"; }
grep -q "^records $archived$" "$work/r.log" || { cat "$work/r.log"; fail "recount read other than $archived records"; }
grep -q "^torn_tails 0$" "$work/r.log" || fail "a failed write left a torn block"
echo "PASS a full archive disk pauses the archive, counting goes on"
