#!/usr/bin/env bash
# Exactly once through crashes: tallyd (net_af_xdp, ack_mode=committed, SQLite)
# is SIGKILLed at CLIENT_CRASH_KILLS (default 20) random points of a paced
# tally-send stream and started again each time on the same database and
# spool; the producer retransmits whatever was not acked. At the end every
# event is acked and SQLite holds exactly the input's totals: what a killed
# tallyd had committed but not acked is recognised after the restart
# (tally_batches.dgrams and the spool: tly1_committed_before), what it had not
# committed is counted once, from the retransmit. Addresses 10.77.0.0/24 in
# namespaces this test makes and removes.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || fail "needs root (namespaces, XDP)"
send=$build/client/tally-send
kills=${CLIENT_CRASH_KILLS:-20}
n_events=${CLIENT_CRASH_EVENTS:-200000}
A=tally-ka-$$ P=tally-kp-$$
veth_pair "$A" "$P" 10.77.0
inA() { ip netns exec "$A" "$@"; }

python3 "$src/tests/integration/client_gen.py" "$n_events" "$work/in.txt" "$work/expect.tsv" \
  --time-ms "$(( now_ms - 1000 ))" --window-ms 60000 --prefix k.k --no-twice
sock=$work/ctl.sock
# RUN: tallyd on the same database and spool, its log in tallyd-RUN.log (run
# directly, not through a function, so that $! is tallyd's pid: ip netns exec
# and the wrapper exec)
start() {
  rm -f "$sock"
  ip netns exec "$A" "$tallyd" --table_rows=65536 --dedup_capacity=2097152 --port=net_af_xdp0,iface=xa \
    --sqlite_path="$work/t.db" --spool_dir="$work/spool" --ctl_socket="$sock" \
    --window_ms=60000 --flush_interval_ms=200 --ack_mode=committed \
    -- -l 0-1 "${eal_test[@]}" > "$work/tallyd-$1.log" 2>&1 &
  tpid=$!; pids+=("$tpid")
  for _ in $(seq 300); do inA "$tallyctl" -s "$sock" status > /dev/null 2>&1 && return 0; sleep 0.1; done
  cat "$work/tallyd-$1.log" >&2; fail "tallyd did not come up (run $1)"
}
start 0
# 10% of the acks lost (where the producer receives them: tallyd's AF_XDP TX
# passes no hook on its side), so datagrams committed before a kill come back
# to the restarted tallyd as retransmits: the case the stored lists are for.
command -v nft > /dev/null || fail "needs nft (deploy/install-deps.sh installs nftables)"
ip netns exec "$P" nft -f - <<'NFT'
table netdev lossy {
  chain in { type filter hook ingress device "xp" priority 0; udp sport 7000 numgen random mod 100 < 10 counter drop; }
}
NFT

# ~20,000 lines a second, so the stream outlasts the kills
python3 -c 'import sys, time
lines = open(sys.argv[1], "rb").readlines()
for i in range(0, len(lines), 1000):
    sys.stdout.buffer.write(b"".join(lines[i:i + 1000])); sys.stdout.flush(); time.sleep(0.05)' \
  "$work/in.txt" | ip netns exec "$P" "$send" --appliance 10.77.0.1:7000 --ack-timeout 1000 \
  --breaker-open 500 --flush-timeout 120000 > "$work/send.txt" 2> "$work/send.err" &
send_pid=$!; pids+=("$send_pid")

caught=0
for k in $(seq "$kills"); do
  sleep "0.$(( RANDOM % 9 + 1 ))"
  kill -9 "$tpid"; wait "$tpid" 2>/dev/null || true
  start "$k"
  n=$(grep -o '^tallyd: [0-9]* datagrams committed before' "$work/tallyd-$k.log" | grep -o '[0-9]*' || echo 0)
  echo "kill $k: the restarted tallyd knows $n committed datagrams"
done
rc=0
wait "$send_pid" || rc=$?
cat "$work/send.txt"; head -5 "$work/send.err"
[ "$rc" = 0 ] || fail "tally-send exited $rc: not every event was acked"
inA "$tallyctl" -s "$sock" stop > /dev/null
wait "$tpid" || { tail -30 "$work/tallyd-$kills.log"; fail "the last tallyd exited with an error"; }
for k in $(seq 0 "$kills"); do
  c=$(awk '$1 == "tly1_committed_before" { print $2 }' "$work/tallyd-$k.log")
  caught=$(( caught + ${c:-0} ))
done
"$check" "$work/expect.tsv" "$work/t.db"
echo "ok: $kills SIGKILLs, every event acked once; $caught retransmits of committed datagrams" \
  "recognised after restarts (the last run's count; killed runs print none)"
echo "PASS client-crash"
