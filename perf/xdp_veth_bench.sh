#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The XDP front on a veth, end to end, as root from a built tree:
#   bash perf/xdp_veth_bench.sh [BUILD] [SECONDS]                 (xdp runs)
#   bash perf/xdp_veth_bench.sh [BUILD] [SECONDS] statsd [RUNS]   (vs a StatsD server)
# tally-gen (DPDK net_af_packet on one end of a veth, in its own namespace)
# sends as fast as it can to the other end. The xdp runs print datagrams per
# second: (1) TLY1 from a source denied by the allow-list, dropped in XDP
# (xdp_drop_acl/s); (2) the source allowed, received by tallyd through AF_XDP
# (rx_packets/s); (3) the same sender into a plain kernel UDP socket (a python3
# receiver).
# The statsd runs compare Tally with a stock StatsD server on the same veth and
# the same sender: StatsD counters ("name:N|c", 10 lines a datagram, tally-gen
# --statsd-plain, which both parse the same way) into tallyd over AF_XDP, then
# into Etsy's statsd (npm statsd 0.9.0 on node, kernel UDP socket),
# alternating, RUNS times each (3); each run prints lines/s sent, received and
# aggregated, and the end the median and range. Tally's figures are its
# counters (statsd_lines, events_accepted); statsd's its management console's
# (statsd.metrics_received, less statsd.bad_lines_seen). With BRUBECK=PATH, a
# brubeck built outside this tree runs too (brubeck_run).
# Limits, said where the figures are printed: a veth has no NIC, no DMA and
# one RX queue; the sender's af_packet writes are the ceiling; on a 2-core VM
# sender, tallyd's worker and its control lcore share the cores.
set -euo pipefail
build=${1:-build}
secs=${2:-5}
mode=${3:-xdp}
runs=${4:-3}
statsd_dir=${TALLY_STATSD_DIR:-/var/tmp/tally-npm-statsd}
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
ip -n "$A" link set xa up; ip -n "$P" link set xp up; ip -n "$A" link set lo up
eal=(--no-huge --no-pci -m 512 --log-level='*:error')

gen() { # sends for $secs seconds, prints datagrams_sent; extra tally-gen options in $@
  ip netns exec "$P" "$build/perf/tally-gen" --port net_af_packet0,iface=xp --duration "$secs" \
    --count 1000000000 --keys 1000 "$@" -- -l 0 "${eal[@]}" --file-prefix "bg-$$" 2>/dev/null |
    awk '$1 == "datagrams_sent" { print $2 }'
}

tallyd_run() { # ACL, counters a,b,..., tally-gen options: prints "sent value..."
  local sock=$work/ctl.sock acl=$1 counters=$2
  shift 2
  ip netns exec "$A" "$build/ctrlplane/tallyd" --port=net_af_xdp0,iface=xa --acl="$acl" \
    --sink=sqlite --sqlite_path="$work/b.db" --spool_dir="$work/spool" --ctl_socket="$sock" --window_ms=3600000 \
    -- -l 0-1 "${eal[@]}" --file-prefix "bt-$$" > "$work/tallyd.log" 2>&1 &
  local t=$!
  pids+=("$t")
  for _ in $(seq 100); do ip netns exec "$A" "$build/ctrlplane/tallyctl" -s "$sock" status > /dev/null 2>&1 && break; sleep 0.1; done
  local sent; sent=$(gen "$@")
  sleep 0.5
  local v; v=$(ip netns exec "$A" "$build/ctrlplane/tallyctl" -s "$sock" stats |
    awk -v want="$counters" 'BEGIN { n = split(want, k, ",") } { v[$1] = $2 }
      END { for (i = 1; i <= n; i++) printf "%s ", v[k[i]] }')
  ip netns exec "$A" "$build/ctrlplane/tallyctl" -s "$sock" stop > /dev/null
  wait "$t" || true
  rm -f "$work/b.db"
  echo "$sent $v"
}

rate() { awk -v n="$1" -v s="$secs" 'BEGIN { printf "%.0f", n / s }'; }
statsd_run() { # Etsy's statsd on the kernel socket: prints "received aggregated", then "sent"
  local conf=$work/statsd.js
  printf '%s\n' '{ address: "192.0.2.1", port: 8125, mgmt_address: "127.0.0.1", mgmt_port: 8126,' \
    '  flushInterval: 3600000, deleteCounters: false, backends: [] }' > "$conf"
  ip netns exec "$A" node "$statsd_dir/node_modules/statsd/stats.js" "$conf" > "$work/statsd.log" 2>&1 &
  local t=$!
  pids+=("$t")
  for _ in $(seq 100); do ip netns exec "$A" ss -lun | grep -q '192.0.2.1:8125' && break; sleep 0.1; done
  local sent; sent=$(gen "$@")
  sleep 2 # what the socket buffer still holds is received, not lost
  ip netns exec "$A" python3 -c '
import re, socket
s = socket.create_connection(("127.0.0.1", 8126), timeout=10); s.sendall(b"counters\n")
out = b""
while b"END" not in out:
    out += s.recv(65536)
v = lambda k: int(re.search(rb"statsd\.%s.: (\d+)" % k.encode(), out).group(1))
print(v("metrics_received"), v("metrics_received") - v("bad_lines_seen"))'
  kill "$t"; wait "$t" 2>/dev/null || true
  echo "$sent"
}

# brubeck (github.com/github/brubeck: C, kernel UDP, recvmmsg on SO_REUSEPORT
# sockets) is neither a Debian nor an npm package: build it outside this tree
# and give its binary in BRUBECK. Its own count of the metrics it took (and of
# bad lines) goes to its carbon backend every second: a small listener sums it.
brubeck_run() { # prints "received aggregated", then "sent"
  local conf=$work/brubeck.json
  cat > "$conf" <<JSON
{ "sharding": false, "server_name": "bench", "dumpfile": "$work/brubeck.dump",
  "capacity": 20, "expire": 3600, "http": "127.0.0.1:8180",
  "backends": [ { "type": "carbon", "address": "127.0.0.1", "port": 2003, "frequency": 1 } ],
  "samplers": [ { "type": "statsd", "address": "192.0.2.1", "port": 8125, "workers": 2,
                  "multisock": true, "multimsg": 8 } ] }
JSON
  ip netns exec "$A" python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 2003)); s.listen(1); c, _ = s.accept(); buf = b""
while True:
    d = c.recv(65536)
    if not d:
        break
    buf += d
m = e = 0
for line in buf.decode(errors="replace").splitlines():
    f = line.split()
    if len(f) == 3 and f[0].endswith("bench.metrics"): m += int(float(f[1]))
    if len(f) == 3 and f[0].endswith("bench.errors"): e += int(float(f[1]))
open(sys.argv[1], "w").write("%d %d" % (m + e, m))' "$work/brubeck.count" &
  local l=$!
  pids+=("$l")
  sleep 0.3
  ip netns exec "$A" "$BRUBECK" --config "$conf" > "$work/brubeck.log" 2>&1 &
  local t=$!
  pids+=("$t")
  for _ in $(seq 100); do ip netns exec "$A" ss -lun | grep -q '192.0.2.1:8125' && break; sleep 0.1; done
  local sent; sent=$(gen "$@")
  sleep 3 # the socket buffers drained and two flushes to the listener
  kill "$t"; wait "$t" 2>/dev/null || true
  wait "$l" 2>/dev/null || true
  cat "$work/brubeck.count"; echo
  echo "$sent"
}

summary() { # who file: median and range of each column (sent received aggregated)
  python3 - "$1" "$2" <<'PY'
import statistics, sys
rows = [list(map(int, l.split())) for l in open(sys.argv[2])]
cols = list(zip(*rows))
f = lambda c: f"{statistics.median(c) / 1e3:.0f} k ({min(c) / 1e3:.0f}-{max(c) / 1e3:.0f})"
print(f"{sys.argv[1]:6} median (range) of {len(rows)}: sent {f(cols[0])}, received {f(cols[1])}, "
      f"aggregated {f(cols[2])} lines/s")
PY
}

if [ "$mode" = statsd ]; then
  lines=10
  [ -f "$statsd_dir/node_modules/statsd/stats.js" ] ||
    npm install --prefix "$statsd_dir" --no-audit --no-fund statsd@0.9.0 > /dev/null
  ip -n "$A" addr add 192.0.2.1/24 dev xa
  echo "veth, $secs s per run, sender tally-gen over net_af_packet, StatsD counters, $lines lines a datagram, $(nproc) CPUs, node $(node --version)"
  g=(--proto statsd --statsd-plain --events-per-dgram "$lines")
  : > "$work/tally.txt"; : > "$work/statsd.txt"; : > "$work/brubeck.txt"
  for i in $(seq "$runs"); do
    read -r sent recv agg < <(tallyd_run "" statsd_lines,events_accepted "${g[@]}")
    echo "run $i tally (AF_XDP):      sent $(rate $((sent * lines)))/s, received $(rate "$recv")/s, aggregated $(rate "$agg")/s lines"
    echo "$(rate $((sent * lines))) $(rate "$recv") $(rate "$agg")" >> "$work/tally.txt"
    { read -r recv agg; read -r sent; } < <(statsd_run "${g[@]}")
    echo "run $i statsd (kernel UDP): sent $(rate $((sent * lines)))/s, received $(rate "$recv")/s, aggregated $(rate "$agg")/s lines"
    echo "$(rate $((sent * lines))) $(rate "$recv") $(rate "$agg")" >> "$work/statsd.txt"
    [ -n "${BRUBECK:-}" ] || continue
    { read -r recv agg; read -r sent; } < <(brubeck_run "${g[@]}")
    echo "run $i brubeck (kernel UDP): sent $(rate $((sent * lines)))/s, received $(rate "$recv")/s, aggregated $(rate "$agg")/s lines"
    echo "$(rate $((sent * lines))) $(rate "$recv") $(rate "$agg")" >> "$work/brubeck.txt"
  done
  summary tally "$work/tally.txt"
  summary statsd "$work/statsd.txt"
  [ -z "${BRUBECK:-}" ] || summary brubeck "$work/brubeck.txt"
  exit 0
fi
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
