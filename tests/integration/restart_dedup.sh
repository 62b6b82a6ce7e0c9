#!/usr/bin/env bash
# Dedup that survives a restart (ack_mode=committed): a producer whose acks
# were lost retransmits every datagram to a tallyd started afresh (empty dedup
# table). The datagrams committed before the start are known from the sink
# (tally_batches.dgrams) and the spool: each retransmit is dropped whole
# (tly1_committed_before) and acked committed, nothing counts twice. Over
# net_pcap (the same capture replayed is the retransmit), on SQLite and, when
# PostgreSQL 15 is installed, on PostgreSQL; then past the dedup horizon the
# lists are not read (the stated bound).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"
acks=$src/tests/integration/ack_pcap.py

"$gen" --proto tly1 --keys 400 --events-per-dgram 5 --count 3000 --ack-req \
  --dup-rate 0.05 --malformed-rate 0.02 --time-ms "$now_ms" --time-span-ms 20000 \
  --window-ms 10000 --seed 11 --pcap "$work/in.pcap" --expected "$work/exp.tsv" > "$work/gen.txt"
valid=$(( $(gen_summary "$work/gen.txt" datagrams_sent) - $(gen_summary "$work/gen.txt" malformed_datagrams) ))

# run NAME ARGS...: tallyd over in.pcap, committed acks into NAME.pcap
run() {
  local name=$1; shift
  "$tallyd" --window_ms 10000 --ctl_socket "$work/ctl.sock" --ack_mode committed \
    --stop_after_idle_ms 3000 --run_ms 60000 --flush_interval_ms 100 \
    --port "net_pcap0,rx_pcap=$work/in.pcap,tx_pcap=$work/$name.pcap" "$@" \
    -- -l 0-1 "${eal_test[@]}" 2> "$work/$name.log" || { cat "$work/$name.log"; fail "tallyd exited $?"; }
}

# both NAME1 NAME2 SINK-ARGS...: the first run, then the retransmit; the
# stored totals read with tally-check "${target[@]}"
both() {
  local first=$1 second=$2; shift 2
  run "$first" "$@"
  "$check" "$work/exp.tsv" "${target[@]}"
  expect_counter "$work/$first.log" tly1_committed_before -eq 0
  expect_counter "$work/$first.log" ack_committed -eq "$valid"
  run "$second" "$@"
  grep -q "$valid datagrams committed before this start" "$work/$second.log" ||
    { cat "$work/$second.log"; fail "the restarted tallyd did not read the $valid committed datagrams"; }
  expect_counter "$work/$second.log" tly1_committed_before -eq "$valid"
  expect_counter "$work/$second.log" events_accepted -eq 0
  expect_counter "$work/$second.log" ack_committed -eq "$valid"
  "$check" "$work/exp.tsv" "${target[@]}"
  echo "ok: ${target[0]}: every retransmitted datagram acked committed, none counted twice"
}

echo "== SQLite"
target=("$work/tally.db")
both sq1 sq2 --sqlite_path "$work/tally.db" --spool_dir "$work/spool-sq"

echo "== past the dedup horizon the lists are not read"
sleep 2
run sq3 --sqlite_path "$work/tally.db" --spool_dir "$work/spool-sq" --dedup_horizon_ms 1000
grep -q "^tallyd: 0 datagrams committed before this start" "$work/sq3.log" ||
  fail "lists older than dedup_horizon_ms were read"
expect_counter "$work/sq3.log" tly1_committed_before -eq 0
echo "ok: a retransmit later than dedup_horizon_ms after its commit counts again (the stated bound)"

if pg_available; then
  echo "== PostgreSQL"
  pg_start p on
  target=(--pg "$(pg_conninfo p)")
  both pg1 pg2 --sink postgres --pg_conninfo "$(pg_conninfo p)" --spool_dir "$work/spool-pg"
else
  echo "SKIP PostgreSQL part: no PostgreSQL 15"
fi
echo "PASS restart-dedup"
