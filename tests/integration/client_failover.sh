#!/usr/bin/env bash
# libtally failover end to end: two tallyd appliances (t1, t2) on net_af_xdp,
# each on its own veth pair, ack_mode=committed, both writing to one
# PostgreSQL (the shared sink; SQLite cannot be shared by two processes).
# tally-send spreads CLIENT_FAILOVER_EVENTS events (default 300,000) over both
# by consistent hashing; t2 is SIGKILLed mid-stream. The client's breaker for
# t2 opens, t2's unacked datagrams go to t1 with the same ids, tally-send ends
# with every event acked, and PostgreSQL holds every event of the input.
#
# What the shared sink can and cannot show (client/README.md): t2 acks a
# datagram only once its flush is committed in PostgreSQL, so what t2 lost in
# memory was never acked and is counted once, by t1. But the datagrams t2 had
# committed and not yet acked when it died are re-sent to t1 with the same
# ids, and t1's dedup has never seen them: they count twice (appliances do
# not share dedup; the shared-sink watermark of issue 19 point 3 would catch
# them and is not built). So the test requires no event lost and the excess
# within the failed-over datagrams, reports it, and says when a run was exact.
# --max-unacked bounds that window (the datagrams in flight). The kill comes
# right after t2's third commit shows in PostgreSQL, which tends to land in
# it (measured: 54 events of 300,000 counted twice, in each of three runs). No
# packet loss is added here: the ack loss of client.sh would widen the window.
# Everything (the PostgreSQL server too) runs in namespaces this test makes:
# tallyd's in A (10.79.1.1 on xa1, 10.79.2.1 on xa2), tally-send's in P.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"
[ "$(id -u)" = 0 ] || fail "needs root (namespaces, XDP)"
pg_available || { echo "SKIP: no PostgreSQL 15 (deploy/install-deps.sh installs it)"; exit 77; }
send=$build/client/tally-send
n_events=${CLIENT_FAILOVER_EVENTS:-300000}
A=tally-fa-$$ P=tally-fp-$$
on_exit+=("ip netns del $A" "ip netns del $P")
ip netns add "$A"
ip netns add "$P"
ip -n "$A" link set lo up; ip -n "$P" link set lo up
for i in 1 2; do
  ip link add "xa$i" netns "$A" type veth peer name "xp$i" netns "$P"
  ip -n "$A" addr add "10.79.$i.1/24" dev "xa$i"
  ip -n "$P" addr add "10.79.$i.2/24" dev "xp$i"
  ip -n "$A" link set "xa$i" up; ip -n "$P" link set "xp$i" up
  ip netns exec "$P" ethtool -K "xp$i" tx off > /dev/null # checksums in software (README)
done
inA() { ip netns exec "$A" "$@"; }
inP() { ip netns exec "$P" "$@"; }
export LSAN_OPTIONS=suppressions=$src/tests/lsan.supp

# The server in A, where the appliances reach it on A's loopback: every
# pg_lib command runs there (they all go through pg_as).
pg_as() { (cd / && ip netns exec "$A" runuser -u postgres -- "$@"); }
pg_start shared off

python3 "$src/tests/integration/client_gen.py" "$n_events" "$work/in.txt" "$work/expect.tsv" \
  --time-ms "$(( now_ms - 1000 ))" --window-ms 60000 --prefix f.k

start_tallyd() { # NAME IFACE PREFIX
  ip netns exec "$A" "$tallyd" --table_rows=65536 --dedup_capacity=2097152 \
    --port="net_af_xdp0,iface=$2" --sink=postgres --pg_conninfo="$(pg_conninfo shared)" \
    --appliance_id="$1" --ctl_socket="$work/$1.sock" --spool_dir="$work/$1-spool" \
    --window_ms=60000 --flush_interval_ms=200 --ack_mode=committed \
    -- -l 0-1 "${eal_base[@]}" --file-prefix "$3" > "$work/$1.log" 2>&1 &
  pids+=($!)
}
ctl() { inA "$tallyctl" -s "$work/$1.sock" "${@:2}"; }
up() {
  for _ in $(seq 300); do ctl "$1" status > /dev/null 2>&1 && break; sleep 0.1; done
  ctl "$1" status > /dev/null || { cat "$work/$1.log" >&2; fail "$1 did not come up"; }
}
# One after the other: two appliances creating the schema at once race in
# PostgreSQL's catalog, and the loser spools until its next try.
start_tallyd t1 xa1 "tally-f1-$$"
t1_pid=${pids[-1]}
up t1
start_tallyd t2 xa2 "tally-f2-$$"
t2_pid=${pids[-1]}
up t2
grep -q "batches go to the spool" "$work/t2.log" && fail "t2 started on its spool: $(grep spool "$work/t2.log")"

# Paced at ~50,000 lines a second, so the kill lands mid-stream.
pace() { python3 -c 'import sys, time
lines = open(sys.argv[1], "rb").readlines()
for i in range(0, len(lines), 2000):
    sys.stdout.buffer.write(b"".join(lines[i:i + 2000])); sys.stdout.flush(); time.sleep(0.04)' "$1"; }
pace "$work/in.txt" | ip netns exec "$P" "$send" --appliance 10.79.1.1:7000 --appliance 10.79.2.1:7000 \
  --ack-timeout 1000 --breaker-open 600000 --flush-timeout 60000 --max-unacked 262144 \
  > "$work/send.txt" 2> "$work/send.err" &
send_pid=$!
pids+=($send_pid)
# Kill t2 once it has committed a few batches to PostgreSQL (tallyctl is too
# slow to watch it with both cores busy-polled), while the stream goes on.
t2_batches() { pg_psql shared "SELECT count(*) FROM tally_batches WHERE appliance = 't2'"; }
for _ in $(seq 200); do [ "$(t2_batches)" -ge 3 ] && break; sleep 0.05; done
kill -9 "$t2_pid"
t2_seen=$(pg_psql shared "SELECT count(*) || ' batches, ' || coalesce(sum(rows), 0) || ' rows' FROM tally_batches WHERE appliance = 't2'")
echo "t2 SIGKILLed mid-stream, having committed $t2_seen"
case $t2_seen in 0\ *) fail "t2 had committed nothing when killed: not mid-stream";; esac
rc=0
wait "$send_pid" || rc=$?
cat "$work/send.txt"; head -5 "$work/send.err"
sv() { awk -v n="$1" '$1 == n { print $2; exit }' "$work/send.txt"; }
[ "$rc" = 0 ] || fail "tally-send exited $rc, want 0 (every event acked)"
good=$(( n_events + 100 ))
[ "$(sv events_acked)" = "$good" ] || fail "events_acked $(sv events_acked), want $good"
[ "$(sv failovers)" -gt 0 ] || fail "no datagram failed over (t2 had committed $t2_seen)"
[ "$(sv breaker_opens)" -ge 1 ] || fail "t2's breaker never opened"
echo "ok: $good events acked, $(sv failovers) datagrams failed over to t1"

ctl t1 stop > /dev/null
wait "$t1_pid" || { tail -40 "$work/t1.log"; fail "t1 exited with an error"; }
# The shared sink against the input, row by row: no row may be under (an
# acked event lost), and what is over must fit in the datagrams that failed
# over (each at most 55 events: 1400 bytes / 25-byte events), the documented
# at-least-once window. tally-check then tells whether this run was exact.
pg_psql shared "SELECT key || chr(9) || window_start_ms || chr(9) || count FROM tally_counts" \
  > "$work/stored.tsv"
read -r under over rows_over <<< "$(python3 - "$work/expect.tsv" "$work/stored.tsv" <<'PY'
import sys
exp = {}
for i, line in enumerate(open(sys.argv[1], encoding="utf-8")):
    f = line.rstrip("\n").split("\t")
    if i:
        exp[(f[0], int(f[1]))] = int(f[3])
got = {}
for line in open(sys.argv[2], encoding="utf-8"):
    k, ws, c = line.rstrip("\n").split("\t")
    got[(k, int(ws))] = int(c)
under = sum(max(0, c - got.get(k, 0)) for k, c in exp.items())
under += sum(c for k, c in got.items() if k not in exp)  # rows nobody sent
over = sum(max(0, c - exp[k]) for k, c in got.items() if k in exp)
print(under, over, sum(1 for k, c in got.items() if k in exp and c > exp[k]))
PY
)"
[ "$under" = 0 ] || fail "$under events missing from (or foreign to) the shared sink: an acked event was lost"
[ "$over" -le $(( $(sv failovers) * 55 )) ] ||
  fail "$over events counted twice, more than the $(sv failovers) failed-over datagrams can hold"
if inA "$check" "$work/expect.tsv" --pg "$(pg_conninfo shared)" > "$work/check.txt" 2>&1; then
  echo "ok: exact totals in the shared sink"
else
  echo "tally-check: $(tail -1 "$work/check.txt")"
  echo "ok: no event lost; $over events in $rows_over rows counted twice (datagrams t2 had" \
    "committed but not acked when it died, re-sent to t1: at least once across appliances)"
fi
cat "$work/check.txt"
echo "PASS client-failover"
