#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The XDP front on a veth, end to end, as root from a built tree:
#   bash perf/xdp_veth_bench.sh [BUILD] [SECONDS]
# tally-gen (DPDK net_af_packet on one end of a veth, in its own namespace)
# sends TLY1 as fast as it can to tallyd (net_af_xdp + tally_xdp on the other
# end). Three runs print datagrams per second: (1) the source denied by the
# allow-list, dropped in XDP (xdp_drop_acl/s); (2) the source allowed, received
# by tallyd through AF_XDP (rx_packets/s); (3) the same sender into a plain
# kernel UDP socket (a python3 receiver; brubeck, the C StatsD server the issue
# names, is not packaged in Debian 12, so this is the kernel-UDP baseline).
# Limits, said where the figures are printed: a veth has no NIC, no DMA and
# one RX queue; the sender's af_packet writes are the ceiling; on a 2-core VM
# sender, tallyd's worker and its control lcore share the cores.
set -euo pipefail
build=${1:-build}
secs=${2:-5}
A=tally-ba-$$ P=tally-bp-$$
work=$(mktemp -d /tmp/tally-xdpbench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$P" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$A"; ip netns add "$P"
ip link add xa netns "$A" type veth peer name xp netns "$P"
# tally-gen sends to 02:00:00:00:00:01: the kernel run needs that to be xa's address.
ip -n "$A" link set xa address 02:00:00:00:00:01
ip -n "$A" link set xa up; ip -n "$P" link set xp up
eal=(--no-huge --no-pci -m 512 --log-level='*:error')

gen() { # sends for $secs seconds, prints datagrams_sent
  ip netns exec "$P" "$build/perf/tally-gen" --port net_af_packet0,iface=xp --duration "$secs" \
    --count 1000000000 --keys 1000 -- -l 0 "${eal[@]}" --file-prefix "bg-$$" 2>/dev/null |
    awk '$1 == "datagrams_sent" { print $2 }'
}

tallyd_run() { # ACL, then prints "sent counter-value" for counter $2
  local sock=$work/ctl.sock
  ip netns exec "$A" "$build/ctrlplane/tallyd" --port=net_af_xdp0,iface=xa --acl="$1" \
    --sink=sqlite --sqlite_path="$work/b.db" --ctl_socket="$sock" --window_ms=3600000 \
    -- -l 0-1 "${eal[@]}" --file-prefix "bt-$$" > "$work/tallyd.log" 2>&1 &
  local t=$!
  pids+=("$t")
  for _ in $(seq 100); do ip netns exec "$A" "$build/ctrlplane/tallyctl" -s "$sock" status > /dev/null 2>&1 && break; sleep 0.1; done
  local sent; sent=$(gen)
  sleep 0.5
  local v; v=$(ip netns exec "$A" "$build/ctrlplane/tallyctl" -s "$sock" stats | awk -v n="$2" '$1 == n { print $2 }')
  ip netns exec "$A" "$build/ctrlplane/tallyctl" -s "$sock" stop > /dev/null
  wait "$t" || true
  echo "$sent $v"
}

rate() { awk -v n="$1" -v s="$secs" 'BEGIN { printf "%.0f", n / s }'; }
echo "veth, $secs s per run, sender tally-gen over net_af_packet, $(nproc) CPUs"
read -r sent drop < <(tallyd_run 10.0.0.0/8 xdp_drop_acl)
echo "denied source:  sent $(rate "$sent")/s, dropped in XDP $(rate "$drop")/s (xdp_drop_acl)"
read -r sent rx < <(tallyd_run "" rx_packets)
echo "allowed source: sent $(rate "$sent")/s, tallyd received $(rate "$rx")/s over AF_XDP (rx_packets)"
ip -n "$A" addr add 192.0.2.1/24 dev xa
ip netns exec "$A" python3 -c '
import socket, time, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 24)
s.bind(("192.0.2.1", 7000)); s.settimeout(30); n = 0
try:
    while True:
        s.recv(2048); n += 1
        s.settimeout(1)  # the sender started (its EAL takes seconds): now 1 s of silence ends it
except socket.timeout:
    pass
open(sys.argv[1], "w").write(str(n))' "$work/udp.count" &
pids+=($!)
sleep 0.5
sent=$(gen)
wait "${pids[-1]}" || true
echo "kernel UDP:     sent $(rate "$sent")/s, a python3 socket received $(rate "$(cat "$work/udp.count")")/s"
