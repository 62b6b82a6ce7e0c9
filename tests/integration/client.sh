#!/usr/bin/env bash
# libtally end to end: tallyd on net_af_xdp (ack_mode=committed, SQLite) in a
# network namespace this test creates, tally-send in the other namespace over
# a veth pair, sending CLIENT_EVENTS events (default 1,000,000) read from a file
# of CSV and JSON lines with bad lines among them, while nftables in the
# sender's namespace drops 5% of the datagrams (netdev egress of its veth) and
# 5% of the acks (netdev ingress: tallyd's AF_XDP TX bypasses the qdisc and any
# hook on its own side, so acks are lost where the producer receives them).
# Every datagram carries a MAC tallyd verifies. tally-send must see every event acked (retransmits > 0), report each bad
# line, and SQLite must hold exactly the input file's totals (explicit ids
# sent twice counted once). Addresses 10.78.0.0/24, inside the namespaces only;
# namespaces, veth and rules are removed on exit.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || fail "needs root (namespaces, XDP, nftables)"
command -v nft > /dev/null || fail "needs nft (deploy/install-deps.sh installs nftables)"
send=$build/client/tally-send
n_events=${CLIENT_EVENTS:-1000000}
A=tally-ca-$$ P=tally-cp-$$
veth_pair "$A" "$P" 10.78.0
inA() { ip netns exec "$A" "$@"; }
inP() { ip netns exec "$P" "$@"; }
export LSAN_OPTIONS=suppressions=$src/tests/lsan.supp

python3 "$src/tests/integration/client_gen.py" "$n_events" "$work/in.txt" "$work/expect.tsv" \
  --time-ms "$(( now_ms - 1000 ))" --window-ms 60000 --bad

# Every datagram signed (MAC trailer) and verified by tallyd under key 7.
mac=7:$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
sock=$work/ctl.sock
ip netns exec "$A" "$tallyd" --table_rows=65536 --dedup_capacity=4194304 --mac_keys="$mac" \
  --port=net_af_xdp0,iface=xa --sink=sqlite --sqlite_path="$work/t.db" --ctl_socket="$sock" \
  --window_ms=60000 --flush_interval_ms=200 --ack_mode=committed \
  -- -l 0-1 "${eal_test[@]}" > "$work/tallyd.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do inA "$tallyctl" -s "$sock" status > /dev/null 2>&1 && break; sleep 0.1; done
inA "$tallyctl" -s "$sock" status > /dev/null || { cat "$work/tallyd.log" >&2; fail "tallyd did not come up"; }

# Loss from here on: random 5% each way, counted by nftables.
inP nft -f - <<'EOF'
table netdev lossy {
  chain out { type filter hook egress device "xp" priority 0; udp dport 7000 numgen random mod 100 < 5 counter drop; }
  chain in { type filter hook ingress device "xp" priority 0; udp sport 7000 numgen random mod 100 < 5 counter drop; }
}
EOF

t0=$(date +%s%N)
rc=0
inP "$send" --appliance 10.78.0.1:7000 --ack-timeout 1000 --flush-timeout 60000 --mac-key "$mac" \
  < "$work/in.txt" > "$work/send.txt" 2> "$work/send.err" || rc=$?
t1=$(date +%s%N)
cat "$work/send.txt"
head -12 "$work/send.err"
[ "$rc" = 3 ] || fail "tally-send exited $rc, want 3 (all acked, bad lines present)"
sv() { awk -v n="$1" '$1 == n { print $2; exit }' "$work/send.txt"; }
good=$(( n_events + 100 ))
[ "$(sv events_read)" = "$good" ] || fail "events_read $(sv events_read), want $good"
[ "$(sv events_acked)" = "$good" ] || fail "events_acked $(sv events_acked), want $good"
[ "$(sv rejected_lines)" = 10 ] || fail "rejected_lines $(sv rejected_lines), want 10"
[ "$(sv retransmits)" -gt 0 ] || fail "no retransmits under 5% loss"
[ "$(grep -c '^tally-send: line [0-9]*: ' "$work/send.err")" = 10 ] ||
  fail "each bad line is reported with its number"
for r in FIELDS TIME VALUE KEY QUOTE JSON JSON_FIELD; do
  [ -n "$(sv "rejected_$r")" ] || fail "no rejected_$r in the summary"
done
dropped=$(inP nft list table netdev lossy | awk '/counter packets/ { for (i = 1; i <= NF; i++) if ($i == "packets") s = s " " $(i + 1) } END { print s }')
read -r d_out d_in <<< "$dropped"
[ "$d_out" -gt 0 ] && [ "$d_in" -gt 0 ] || fail "nftables dropped $d_out datagrams, $d_in acks: no loss was made"
echo "ok: $good events acked through ${d_out} dropped datagrams and ${d_in} dropped acks," \
  "$(sv retransmits) retransmits, in $(( (t1 - t0) / 1000000 )) ms"

inA "$tallyctl" -s "$sock" stop > /dev/null
wait "${pids[0]}" || { tail -40 "$work/tallyd.log"; fail "tallyd exited with an error"; }
pids=("${pids[@]:1}")
expect_counter "$work/tallyd.log" drop_duplicate -ge 100
expect_counter "$work/tallyd.log" tly1_mac_bad -eq 0
"$check" "$work/expect.tsv" "$work/t.db" ||
  { awk '$2 != "0"' "$work/tallyd.log" | tail -40; fail "totals differ"; }
echo "PASS client"
