#!/usr/bin/env bash
# TLY1 MAC end to end (DESIGN's SipHash-2-4-128 trailer, keys by key_id):
#  A. datagrams signed with key 1 and require_mac on: totals exact, no MAC drop;
#  B. the same capture against a wrong key: every valid datagram counted under
#     tly1_mac_bad, nothing reaches a table;
#  C. the capture replayed twice: the second copy's events all drop_duplicate,
#     totals still exact (a replayed datagram is caught by dedup);
#  D. unsigned datagrams with require_mac on: tly1_mac_required, nothing stored;
#  E. a key rotated under traffic (net_memif): `tallyctl config set mac_keys`
#     retires key 1 mid-stream, producers still signing with it are accepted for
#     mac_grace_ms (tly1_mac_old_key), totals exact: nothing lost; then a grace
#     period that ends is logged.
# (A flipped bit, a truncated trailer, an unknown key_id: tests/test_tly1.c.)
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faults_lib.sh"
K1=000102030405060708090a0b0c0d0e0f
K2=f0e0d0c0b0a090807060504030201000
K3=11111111111111111111111111111111
traffic=(--proto tly1 --keys 500 --events-per-dgram 5 --dup-rate 0.05 --malformed-rate 0.02
  --time-ms "$now_ms" --time-span-ms 20000 --window-ms 10000 --seed 9)

# run NAME PCAP ARGS...: tallyd over PCAP into NAME.db, report in NAME.log
run() {
  local name=$1 pcap=$2; shift 2
  "$tallyd" --window_ms 10000 --sqlite_path "$work/$name.db" --ctl_socket "$work/ctl.sock" \
    --spool_dir "$work/spool-$name" --stop_after_idle_ms 3000 --run_ms 60000 \
    --port "net_pcap0,rx_pcap=$pcap" "$@" -- -l 0-1 "${eal_test[@]}" 2> "$work/$name.log" ||
    { cat "$work/$name.log"; fail "tallyd ($name) exited $?"; }
}

rows() { sqlite3 "$work/$1.db" "SELECT count(*) FROM tally_counts" 2>/dev/null || echo 0; }

echo "== A: signed, require_mac"
"$gen" "${traffic[@]}" --count 3000 --mac-key "1:$K1" --pcap "$work/signed.pcap" \
  --expected "$work/exp.tsv" > "$work/gen.txt"
valid=$(( $(gen_summary "$work/gen.txt" datagrams_sent) - $(gen_summary "$work/gen.txt" malformed_datagrams) ))
run a "$work/signed.pcap" --mac_keys "1:$K1" --require_mac 1
"$check" "$work/exp.tsv" "$work/a.db"
expect_counter "$work/a.log" tly1_datagrams -eq "$valid"
for c in tly1_mac_bad tly1_mac_no_key tly1_mac_required tly1_mac_old_key; do
  expect_counter "$work/a.log" "$c" -eq 0
done
grep -q "$K1" "$work/a.log" && fail "the key shows in tallyd's output"

echo "== B: the wrong key"
run b "$work/signed.pcap" --mac_keys "1:$K2"
expect_counter "$work/b.log" tly1_mac_bad -eq "$valid"
expect_counter "$work/b.log" events_accepted -eq 0
[ "$(rows b)" = 0 ] || fail "a datagram under a wrong key reached the table"

echo "== C: the capture replayed"
python3 - "$work/signed.pcap" "$work/twice.pcap" <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
open(sys.argv[2], "wb").write(d + d[24:])  # the records again after the first copy
PY
run c "$work/twice.pcap" --mac_keys "1:$K1" --require_mac 1
"$check" "$work/exp.tsv" "$work/c.db"
expect_counter "$work/c.log" tly1_datagrams -eq $((2 * valid))
expect_counter "$work/c.log" drop_duplicate -ge "$(gen_summary "$work/gen.txt" events_valid_expected)"
echo "ok: the replayed copy was caught by dedup, totals exact"

echo "== D: unsigned, require_mac"
"$gen" "${traffic[@]}" --count 1000 --malformed-rate 0 --pcap "$work/plain.pcap" > /dev/null
run d "$work/plain.pcap" --mac_keys "1:$K1" --require_mac 1
expect_counter "$work/d.log" tly1_mac_required -eq 1000
[ "$(rows d)" = 0 ] || fail "an unsigned datagram reached the table under require_mac"

echo "== E: key 1 retired under traffic, producers still on it"
start_tallyd "$work/e.log" --mac_keys "1:$K1" --require_mac 1 --mac_grace_ms 600000 \
  --sqlite_path "$work/e.db" --spool_dir "$work/spool-e"
"$gen" "${traffic[@]}" --count 30000 --rate 5000 --flows 16 --linger 60 --mac-key "1:$K1" \
  --port "net_memif0,role=client,socket=$work/memif.sock,socket-abstract=no" \
  --expected "$work/exp-e.tsv" -- -l 0 "${eal_gen[@]}" > "$work/gen-e.txt" &
gpid=$!; pids+=("$gpid")
sleep 2
"$tallyctl" -s "$work/ctl.sock" config set mac_keys "2:$K2" > /dev/null
before=$(stat tly1_mac_old_key)
for _ in $(seq 600); do grep -q '^datagrams_sent' "$work/gen-e.txt" && break; sleep 0.1; done
sleep 1
wait_stored 60
after=$(stat tly1_mac_old_key)
[ "$after" -gt "$before" ] || fail "no datagram was accepted under the retired key"
echo "ok: $after datagrams accepted under retired key 1 during its grace period"
"$tallyctl" -s "$work/ctl.sock" config set mac_grace_ms 300 > /dev/null
"$tallyctl" -s "$work/ctl.sock" config set mac_keys "3:$K3" > /dev/null
for _ in $(seq 50); do grep -q "grace period over" "$work/e.log" && break; sleep 0.1; done
grep -q "grace period over" "$work/e.log" || fail "the grace period of key 2 did not end"
echo "ok: a 300 ms grace period ended: $(grep -m1 'grace period over' "$work/e.log")"
stop_tallyd "$work/e.log"
cat "$work/e.log"
"$check" "$work/exp-e.tsv" "$work/e.db"
for c in tly1_mac_bad tly1_mac_no_key tly1_mac_required; do expect_counter "$work/e.log" "$c" -eq 0; done
grep -q -e "$K1" -e "$K2" -e "$K3" "$work/e.log" && fail "a key shows in tallyd's log"
echo "PASS mac"
