#!/usr/bin/env bash
# Live traffic: tally-gen (memif client) sends TLY1 with duplicates and malformed
# datagrams to tallyd (memif server) running WORKERS worker lcores, one RX queue
# each. The SQLite rows must equal the expected totals exactly, and with 2 workers
# both must have received traffic.
. "$(dirname "$0")/lib.sh"
workers=${1:-1}
sock=$work/memif.sock
if [ "$workers" -eq 1 ]; then lcores="0@0,1@1"; else lcores="0@0,1@1,2@1"; fi

"$tallyd" --window_ms 10000 --sqlite_path "$work/tally.db" --ctl_socket "$work/ctl.sock" \
  --stop_after_idle_ms 3000 --run_ms 120000 --dedup_capacity 1048576 --table_rows 131072 \
  --flush_interval_ms 300 --port "net_memif0,role=server,socket=$sock,socket-abstract=no" \
  -- --lcores "$lcores" "${eal_test[@]}" 2> "$work/tallyd.log" &
tpid=$!; pids+=("$tpid")
# The control socket appears once tallyd is ready for traffic.
for _ in $(seq 300); do [ -S "$work/ctl.sock" ] && break; sleep 0.1; done
[ -S "$work/ctl.sock" ] || { cat "$work/tallyd.log"; fail "tallyd did not become ready"; }
"$tallyctl" -s "$work/ctl.sock" stats > "$work/live-stats.txt" || fail "tallyctl stats failed"
"$tallyctl" -s "$work/ctl.sock" stats --json | grep -q '"counters"' || fail "tallyctl stats --json"

"$gen" --proto tly1 --keys 5000 --events-per-dgram 4 --count 40000 --rate 40000 \
  --dup-rate 0.05 --malformed-rate 0.01 --flows 64 --tx-queues "$workers" --linger 30 \
  --time-ms "$now_ms" --time-span-ms 20000 --window-ms 10000 --seed 21 \
  --port "net_memif0,role=client,socket=$sock,socket-abstract=no" --expected "$work/expected.tsv" \
  -- -l 0 "${eal_gen[@]}" > "$work/gen.txt" &
gpid=$!; pids+=("$gpid")
# The generator lingers after sending until tallyd (idle) closes first: a memif
# peer must not vanish under a polling receiver.
wait "$tpid" || { cat "$work/tallyd.log"; fail "tallyd exited with an error"; }
wait "$gpid" || { cat "$work/gen.txt"; fail "tally-gen failed"; }
cat "$work/gen.txt"
cat "$work/tallyd.log"

[ "$(gen_summary "$work/gen.txt" frames_tx_failed)" = 0 ] || fail "generator could not send everything"
"$check" "$work/expected.tsv" "$work/tally.db"
expect_counter "$work/tallyd.log" rx_packets -eq "$(gen_summary "$work/gen.txt" datagrams_sent)"
expect_counter "$work/tallyd.log" drop_duplicate -eq "$(gen_summary "$work/gen.txt" duplicates_sent)"
expect_counter "$work/tallyd.log" sink_errors -eq 0
for w in $(seq 0 $((workers - 1))); do
  rx=$(awk -v w="$w" '$1 == "worker" && $2 == w { print $6 }' "$work/tallyd.log")
  [ -n "$rx" ] && [ "$rx" -gt 0 ] || fail "worker $w received no traffic"
  echo "ok: worker $w received $rx frames"
done
grep -q '^rx_packets' "$work/live-stats.txt" || fail "tallyctl stats printed no counters"
echo "PASS memif with $workers worker(s)"
