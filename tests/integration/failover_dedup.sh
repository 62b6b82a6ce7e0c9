#!/usr/bin/env bash
# Exactly once across appliances (ack_mode=committed, one shared PostgreSQL
# sink): appliance A takes a producer's datagrams, commits them and dies
# before its acks reach the producer; the producer fails over to appliance B
# and retransmits every datagram. B, already running, learnt what A committed
# (tally_batches.dgrams, read every committed_refresh_ms): each retransmit is
# dropped whole and acked committed (tly1_committed_before), nothing counts
# twice; totals in PostgreSQL equal the generator's. Then a third appliance
# started after A's commits knows them from its start.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faults_lib.sh"
. "$(dirname "$0")/pg_lib.sh"
pg_available || { echo "SKIP: no PostgreSQL 15 (deploy/install-deps.sh installs it)"; exit 77; }
pg_start p on
pg=(--sink postgres --pg_conninfo "$(pg_conninfo p)" --ack_mode committed)
traffic=(--proto tly1 --keys 300 --events-per-dgram 4 --count 2000 --ack-req --dup-rate 0.05
  --malformed-rate 0.02 --time-ms "$now_ms" --time-span-ms 20000 --window-ms 10000 --seed 13)
"$gen" "${traffic[@]}" --pcap "$work/in.pcap" --expected "$work/exp.tsv" > "$work/gen.txt"
valid=$(( $(gen_summary "$work/gen.txt" datagrams_sent) - $(gen_summary "$work/gen.txt" malformed_datagrams) ))

echo "== B up (memif), refreshing every 300 ms"
start_tallyd "$work/b.log" "${pg[@]}" --appliance_id b --committed_refresh_ms 300 \
  --spool_dir "$work/spool-b"

echo "== A takes the datagrams, commits them, exits (its acks never reach the producer)"
"$tallyd" --window_ms 10000 --appliance_id a "${pg[@]}" --spool_dir "$work/spool-a" \
  --ctl_socket "$work/a.sock" --stop_after_idle_ms 3000 --run_ms 60000 --flush_interval_ms 100 \
  --port "net_pcap0,rx_pcap=$work/in.pcap" -- --lcores 0@0,1@1 "${eal_base[@]}" --file-prefix "tally-a-$$" \
  2> "$work/a.log" || { cat "$work/a.log"; fail "appliance a exited $?"; }
"$check" "$work/exp.tsv" --pg "$(pg_conninfo p)"
expect_counter "$work/a.log" ack_committed -eq "$valid"

for _ in $(seq 100); do [ "$(stat committed_known)" -ge "$valid" ] && break; sleep 0.1; done
[ "$(stat committed_known)" -ge "$valid" ] || fail "B did not learn A's $valid committed datagrams"
echo "ok: B knows $(stat committed_known) datagrams A committed ($(stat committed_refreshes) refreshes)"

echo "== the producer fails over to B and retransmits everything"
"$gen" "${traffic[@]}" --flows 16 --linger 60 \
  --port "net_memif0,role=client,socket=$work/memif.sock,socket-abstract=no" \
  -- -l 0 "${eal_gen[@]}" > "$work/gen-b.txt" &
gpid=$!; pids+=("$gpid")
for _ in $(seq 600); do grep -q '^datagrams_sent' "$work/gen-b.txt" && break; sleep 0.1; done
for _ in $(seq 100); do [ "$(stat tly1_committed_before)" -ge "$valid" ] && break; sleep 0.1; done
stop_tallyd "$work/b.log"
cat "$work/b.log"
expect_counter "$work/b.log" tly1_committed_before -eq "$valid"
expect_counter "$work/b.log" events_accepted -eq 0
# (the acks themselves: restart_dedup.sh reads them from a tx_pcap; tally-gen
# does not read its memif ring, so here they count as ack_tx_full)
expect_counter "$work/b.log" committed_refresh_errors -eq 0
"$check" "$work/exp.tsv" --pg "$(pg_conninfo p)"
echo "ok: every retransmit acked committed by B, totals exact, nothing twice"

echo "== C, started after A's commits, knows them from its start"
"$tallyd" --window_ms 10000 --appliance_id c "${pg[@]}" --spool_dir "$work/spool-c" \
  --ctl_socket "$work/c.sock" --stop_after_idle_ms 3000 --run_ms 60000 --committed_refresh_ms 0 \
  --port "net_pcap0,rx_pcap=$work/in.pcap" -- -l 0-1 "${eal_test[@]}" 2> "$work/c.log" ||
  { cat "$work/c.log"; fail "appliance c exited $?"; }
expect_counter "$work/c.log" tly1_committed_before -eq "$valid"
"$check" "$work/exp.tsv" --pg "$(pg_conninfo p)"
echo "PASS failover-dedup"
