#!/usr/bin/env bash
# The exception path: tallyd owns one end of a veth through DPDK (net_af_packet)
# and hands what is not Tally's to a TAP (net_tap) that is moved into a third
# namespace holding the appliance's address 10.77.0.1. Nothing else in any
# namespace owns that address, so every ARP reply, ping reply and TCP answer
# the producer gets went producer -> tallyd -> TAP -> kernel -> TAP -> tallyd ->
# producer. Events sent meanwhile are counted exactly. The namespaces and the
# veth are this test's own; addresses are 10.77.0.0/24, inside them only.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || fail "needs root (namespaces)"
A=tally-ea-$$ P=tally-ep-$$ K=tally-ek-$$
on_exit+=("ip netns del $A" "ip netns del $P" "ip netns del $K")
for n in "$A" "$P" "$K"; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip link add xa netns "$A" type veth peer name xp netns "$P"
ip -n "$A" link set xa up
ip -n "$P" addr add 10.77.0.2/24 dev xp
ip -n "$P" link set xp up
# Finish the sender's UDP checksums in software, as a wire would (README).
ip netns exec "$P" ethtool -K xp tx off > /dev/null
inK() { ip netns exec "$K" "$@"; }
inP() { ip netns exec "$P" "$@"; }

sock=$work/ctl.sock
ip netns exec "$A" "$tallyd" --port=net_af_packet0,iface=xa --exception_port=net_tap0,iface=tlyx0 \
  --sink=sqlite --sqlite_path="$work/t.db" --ctl_socket="$sock" --window_ms=3600000 \
  --flush_interval_ms=200 -- -l 0-1 "${eal_test[@]}" > "$work/tallyd.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do ip netns exec "$A" "$tallyctl" -s "$sock" status > /dev/null 2>&1 && break; sleep 0.1; done
ip netns exec "$A" "$tallyctl" -s "$sock" status > /dev/null || { cat "$work/tallyd.log"; fail "tallyd did not come up"; }
# The TAP is the appliance's kernel side: give it its own namespace and the address.
ip -n "$A" link set tlyx0 netns "$K"
inK ip addr add 10.77.0.1/24 dev tlyx0
inK ip link set tlyx0 up
ip netns exec "$K" python3 -c 'import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.77.0.1", 2222)); s.listen(1); c, _ = s.accept(); c.sendall(b"kernel-ok\n")' &
pids+=($!)
for _ in $(seq 100); do inK ss -ltn | grep -q '10.77.0.1:2222' && break; sleep 0.1; done

inP ping -c 3 -i 0.2 -W 2 10.77.0.1 > "$work/ping.txt" || { cat "$work/ping.txt" "$work/tallyd.log"; fail "ping through the exception path failed"; }
inP ip neigh show 10.77.0.1 dev xp | grep -q lladdr || fail "ARP for 10.77.0.1 not resolved"
got=$(inP python3 -c 'import socket
s = socket.create_connection(("10.77.0.1", 2222), timeout=5); print(s.recv(64).decode().strip())')
[ "$got" = kernel-ok ] || fail "TCP through the exception path failed: $got"
echo "ok: ARP, ping and TCP answered by the kernel behind the exception path"

t_ms=$(( now_ms - 60000 ))
inP python3 "$src/tests/integration/tly1_send.py" 10.77.0.2 10.77.0.1 7000 --datagrams 200 \
  --events 4 --keys 9 --time-ms "$t_ms" --expect "$work/expect.tsv"
t_s=$(( t_ms / 1000 ))
for i in $(seq 30); do
  printf 'exc.statsd:%d|c|T%d\n' "$i" "$t_s" | inP socat -u - UDP4-SENDTO:10.77.0.1:8125,bind=10.77.0.2
done
printf 'exc.statsd|c\t%d\t3600000\t30\t465\t1\t30\n' "$(( t_s * 1000 / 3600000 * 3600000 ))" >> "$work/expect.tsv"
sleep 1
ip netns exec "$A" "$tallyctl" -s "$sock" stats --json > "$work/stats.json"
val() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["counters"][sys.argv[2]])' "$@"; }
to=$(val "$work/stats.json" exception_to_kernel) from=$(val "$work/stats.json" exception_from_kernel)
[ "$to" -gt 0 ] && [ "$from" -gt 0 ] || fail "exception_to_kernel $to, exception_from_kernel $from"
echo "ok: exception_to_kernel $to, exception_from_kernel $from"
ip netns exec "$A" "$tallyctl" -s "$sock" stop > /dev/null
wait "${pids[0]}" || { cat "$work/tallyd.log"; fail "tallyd exited with an error"; }
pids=("${pids[@]:1}")
"$check" "$work/expect.tsv" "$work/t.db" ||
  { awk '$2 != "0"' "$work/tallyd.log" | tail -40; fail "totals differ"; }
echo "PASS exception"
