#!/usr/bin/env bash
# Real StatsD clients: Debian's python3-aiodogstatsd and npm's hot-shots send
# every metric type they have (with tags and sample rates; raw lines add sets,
# relative gauges and |T) to 127.0.0.1 over kernel UDP while tcpdump records
# loopback; tallyd replays the capture through net_pcap, and an independent
# reader of the capture (statsd_clients.py) checks every stored row exactly and
# every percentile and distinct count within its stated error.
# Needs tcpdump, python3-aiodogstatsd and npm (a registry to install hot-shots
# into a temp dir); without them the test is skipped (exit 77), saying why.
. "$(dirname "$0")/lib.sh"
here=$(dirname "$0")
command -v tcpdump >/dev/null || { echo "SKIP: no tcpdump"; exit 77; }
/usr/bin/python3 -c 'import aiodogstatsd' 2>/dev/null || { echo "SKIP: no python3-aiodogstatsd"; exit 77; }
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

node_ok=0
if command -v npm >/dev/null && (cd "$work" && timeout 120 npm install --silent --no-audit --no-fund hot-shots@10 >/dev/null 2>&1); then
  node_ok=1
else
  echo "note: hot-shots could not be installed from npm: only the Python client runs"
fi

tcpdump -i lo -U -w "$work/c.pcap" "udp dst port $port" 2> "$work/tcpdump.log" &
pids+=($!)
for _ in $(seq 50); do grep -q "listening on" "$work/tcpdump.log" && break; sleep 0.1; done
/usr/bin/python3 "$here/statsd_clients.py" send-py "$port"
[ $node_ok = 1 ] && NODE_PATH="$work/node_modules" node "$here/statsd_clients.js" "$port"
sleep 0.5
kill -INT "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true
cat "$work/tcpdump.log"

# As recorded, every frame fails the UDP checksum (lo leaves the partial sum a
# NIC would complete): complete them, as a capture from a wire would have them.
/usr/bin/python3 "$here/statsd_clients.py" fix-csum "$work/c.pcap" "$work/fixed.pcap"

# A list of 16 deferred sketch values: the worker's table is sealed early, again
# and again, and values past the list go straight to the slabs; the stored
# sketches must come out the same.
"$tallyd" --window_ms 86400000 --sqlite_path "$work/tally.db" --ctl_socket "$work/ctl.sock" \
  --stop_after_idle_ms 1500 --run_ms 60000 --table_rows 4096 --flush_interval_ms 200 \
  --sketch_values 16 \
  --lateness_ms 0 --future_ms 0 --statsd_port "$port" \
  --port "net_pcap0,rx_pcap=$work/fixed.pcap" \
  -- -l 0-1 "${eal_test[@]}" 2> "$work/tallyd.log" || { cat "$work/tallyd.log"; fail "tallyd exited $?"; }
grep -E "^statsd_|^drop_|^events_" "$work/tallyd.log" | awk '$2 != 0'
expect_counter "$work/tallyd.log" drop_udp_csum -eq 0
expect_counter "$work/tallyd.log" statsd_lines -gt 1000
bad=$(awk '$1 ~ /^statsd_bad|^statsd_key|^statsd_sketch/ { s += $2 } END { print s + 0 }' "$work/tallyd.log")
[ "$bad" -eq 0 ] || fail "$bad StatsD lines from stock clients were refused"
/usr/bin/python3 "$here/statsd_clients.py" expect "$work/fixed.pcap" "$work/tally.db" 86400000
[ $node_ok = 1 ] && { sqlite3 "$work/tally.db" "SELECT count(*) FROM tally_counts WHERE key LIKE 'node.%'" | grep -qv '^0$' || fail "no node.* rows"; }
echo "PASS statsd_clients (python3-aiodogstatsd$([ $node_ok = 1 ] && echo ', hot-shots'))"
