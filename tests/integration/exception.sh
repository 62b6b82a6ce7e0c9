#!/usr/bin/env bash
# The exception path on several ports: tallyd owns one end of each of three
# veths through DPDK (net_af_packet), and hands what is not Tally's to the TAP
# of the port it came in on (net_tap, one for each of the first two ports; the
# third has none and drops such frames by reason), both moved into a
# namespace holding the appliance's addresses: 10.77.0.1 and fd00::1 on port
# 0's TAP, 10.77.1.1 on port 1's. Nothing else in any namespace owns them, so
# every ARP and ND reply, ping and ping -6 reply and TCP answer a producer gets
# went producer -> tallyd -> TAP -> kernel -> TAP -> tallyd -> producer, and a
# reply to the producer behind port 1 reached it only if it left through port
# 1. Events sent meanwhile (IPv4 and IPv6, both ports) are counted exactly.
# The namespaces and veths are this test's own; addresses are 10.77.0.0/24,
# 10.77.1.0/24 and fd00::/64, inside them only.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || fail "needs root (namespaces)"
A=tally-ea-$$ P=tally-ep-$$ Q=tally-eq-$$ R=tally-er-$$ K=tally-ek-$$
on_exit+=("ip netns del $A" "ip netns del $P" "ip netns del $Q" "ip netns del $R" "ip netns del $K")
for n in "$A" "$P" "$Q" "$R" "$K"; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip link add xa0 netns "$A" type veth peer name xp netns "$P"
ip link add xa1 netns "$A" type veth peer name xq netns "$Q"
ip -n "$A" link set xa0 up
ip link add xa2 netns "$A" type veth peer name xr netns "$R"
ip -n "$A" link set xa1 up
ip -n "$A" link set xa2 up
ip -n "$R" addr add 10.77.2.2/24 dev xr
ip -n "$R" link set xr up
ip -n "$P" addr add 10.77.0.2/24 dev xp
ip -n "$P" addr add fd00::2/64 dev xp nodad
ip -n "$P" link set xp up
ip -n "$Q" addr add 10.77.1.2/24 dev xq
ip -n "$Q" link set xq up
# Finish the senders' UDP checksums in software, as a wire would (README).
ip netns exec "$P" ethtool -K xp tx off > /dev/null
ip netns exec "$Q" ethtool -K xq tx off > /dev/null
inK() { ip netns exec "$K" "$@"; }
inP() { ip netns exec "$P" "$@"; }
inQ() { ip netns exec "$Q" "$@"; }

# More exception devices than ports: refused at start, naming the key.
if ip netns exec "$A" "$tallyd" --port=net_af_packet0,iface=xa0 \
  --exception_port="net_tap0,iface=tlyz0;net_tap1,iface=tlyz1" --sqlite_path="$work/z.db" \
  --ctl_socket="$work/z.sock" --run_ms=1000 -- -l 0-1 "${eal_test[@]}" > "$work/z.log" 2>&1; then
  fail "two exception devices for one port were accepted"
fi
grep -q "exception_port: 2 devices or more for 1 port" "$work/z.log" || { cat "$work/z.log"; fail "no exception_port error"; }
echo "ok: more exception devices than ports refused"

sock=$work/ctl.sock
ip netns exec "$A" "$tallyd" \
  --port="net_af_packet0,iface=xa0;net_af_packet1,iface=xa1;net_af_packet2,iface=xa2" \
  --exception_port="net_tap0,iface=tlyx0;net_tap1,iface=tlyx1" \
  --sink=sqlite --sqlite_path="$work/t.db" --ctl_socket="$sock" --window_ms=3600000 \
  --flush_interval_ms=200 -- -l 0-1 "${eal_test[@]}" > "$work/tallyd.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do ip netns exec "$A" "$tallyctl" -s "$sock" status > /dev/null 2>&1 && break; sleep 0.1; done
ip netns exec "$A" "$tallyctl" -s "$sock" status > /dev/null || { cat "$work/tallyd.log"; fail "tallyd did not come up"; }
grep -q "from port 1 go to port" "$work/tallyd.log" || { cat "$work/tallyd.log"; fail "no TAP for port 1"; }
# The TAPs are the appliance's kernel side: their own namespace and the addresses.
ip -n "$A" link set tlyx0 netns "$K"
ip -n "$A" link set tlyx1 netns "$K"
inK ip addr add 10.77.0.1/24 dev tlyx0
inK ip addr add fd00::1/64 dev tlyx0 nodad
inK ip addr add 10.77.1.1/24 dev tlyx1
inK ip link set tlyx0 up
inK ip link set tlyx1 up
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
# IPv6: neighbour discovery (multicast solicitation in, the kernel's advert
# out) and ping -6, both through port 0's TAP.
inP ping -6 -c 3 -i 0.2 -W 2 fd00::1 > "$work/ping6.txt" ||
  { cat "$work/ping6.txt" "$work/tallyd.log"; fail "ping -6 through the exception path failed"; }
inP ip -6 neigh show fd00::1 dev xp | grep -q lladdr || fail "ND for fd00::1 not resolved"
mac0=$(ip -n "$A" link show xa0 | awk '/link\/ether/ { print $2 }')
inP ip -6 neigh show fd00::1 dev xp | grep -qi "lladdr $mac0" || fail "ND answered with another MAC than port 0's"
echo "ok: ND and ping -6 answered by the kernel behind the exception path"
# Port 1: its requests reach port 1's TAP, and the replies must leave through
# port 1 (out of port 0 they would never reach this namespace).
inQ ping -c 3 -i 0.2 -W 2 10.77.1.1 > "$work/ping1.txt" ||
  { cat "$work/ping1.txt" "$work/tallyd.log"; fail "ping through port 1's exception path failed"; }
inQ ip neigh show 10.77.1.1 dev xq | grep -q lladdr || fail "ARP for 10.77.1.1 not resolved"
echo "ok: ARP and ping on port 1 answered through port 1's TAP and out of port 1"
# Port 2 has no TAP: its ARP requests are dropped under their reason, as with
# the path off, not handed over to be dropped later.
ip netns exec "$R" ping -c 2 -i 0.2 -W 1 10.77.2.1 > /dev/null 2>&1 && fail "port 2 has no TAP, yet a ping was answered"

t_ms=$(( now_ms - 60000 ))
inP python3 "$src/tests/integration/tly1_send.py" 10.77.0.2 10.77.0.1 7000 --datagrams 200 \
  --events 4 --keys 9 --time-ms "$t_ms" --expect "$work/expect.tsv"
t_s=$(( t_ms / 1000 ))
for i in $(seq 30); do
  printf 'exc.statsd:%d|c|T%d\n' "$i" "$t_s" | inP socat -u - UDP4-SENDTO:10.77.0.1:8125,bind=10.77.0.2
done
inP python3 "$src/tests/integration/tly1_send.py" fd00::2 fd00::1 7000 --datagrams 50 \
  --events 3 --keys 5 --prefix v6. --time-ms "$t_ms" --id0 400000 --expect "$work/expect.tsv"
inQ python3 "$src/tests/integration/tly1_send.py" 10.77.1.2 10.77.1.1 7000 --datagrams 60 \
  --events 2 --keys 4 --prefix p1. --time-ms "$t_ms" --id0 500000 --expect "$work/expect.tsv"
printf 'exc.statsd|c\t%d\t3600000\t30\t465\t1\t30\n' "$(( t_s * 1000 / 3600000 * 3600000 ))" >> "$work/expect.tsv"
sleep 1
ip netns exec "$A" "$tallyctl" -s "$sock" stats --json > "$work/stats.json"
val() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["counters"][sys.argv[2]])' "$@"; }
to=$(val "$work/stats.json" exception_to_kernel) from=$(val "$work/stats.json" exception_from_kernel)
[ "$to" -gt 0 ] && [ "$from" -gt 0 ] || fail "exception_to_kernel $to, exception_from_kernel $from"
echo "ok: exception_to_kernel $to, exception_from_kernel $from"
# (Ports 0 and 1 hand every such frame over, so only port 2 counts here.)
eth=$(val "$work/stats.json" drop_ethertype)
[ "$eth" -gt 0 ] || fail "port 2 (no TAP): drop_ethertype $eth, want its ARP requests"
echo "ok: port 2 without a TAP: $eth ARP frames dropped as drop_ethertype, none handed over"
ip netns exec "$A" "$tallyctl" -s "$sock" stop > /dev/null
wait "${pids[0]}" || { cat "$work/tallyd.log"; fail "tallyd exited with an error"; }
pids=("${pids[@]:1}")
"$check" "$work/expect.tsv" "$work/t.db" ||
  { awk '$2 != "0"' "$work/tallyd.log" | tail -40; fail "totals differ"; }
echo "PASS exception"
