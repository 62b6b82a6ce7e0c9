#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# libtally end to end, as root from a built tree:
#   bash perf/client_bench.sh [BUILD] [EVENTS] [RUNS]
# tally-send (kernel UDP, one namespace) sends EVENTS events (default
# 1,000,000; CSV lines of tests/integration/client_gen.py, 1,000 keys) to
# tallyd on net_af_xdp over a veth pair (the other namespace), no loss added,
# RUNS times (default 3) per ack_mode (accepted, committed; flush every 200 ms).
# Each run is timed from tally-send's start to its exit, which waits for the
# last ack, and prints events/s as median [min-max] with the retransmits.
# Limits: a veth and a 2-core VM; tallyd's worker busy-polls one core, so
# tally-send, its ack thread, the kernel's UDP and veth work and tallyd's
# flusher and sink share the other.
set -euo pipefail
build=${1:-build}
events=${2:-1000000}
runs=${3:-3}
src=$(cd "$(dirname "$0")/.." && pwd)
A=tally-cba-$$ P=tally-cbp-$$
work=$(mktemp -d /tmp/tally-clientbench.XXXXXX)
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
ip -n "$A" addr add 10.80.0.1/24 dev xa; ip -n "$P" addr add 10.80.0.2/24 dev xp
ip -n "$A" link set xa up; ip -n "$P" link set xp up
ip -n "$A" link set lo up; ip -n "$P" link set lo up
ip netns exec "$P" ethtool -K xp tx off > /dev/null
eal=(--no-huge --no-pci -m 512 --log-level='*:error')
python3 "$src/tests/integration/client_gen.py" "$events" "$work/in.txt" "$work/exp.tsv" \
  --time-ms "$(( $(date +%s) * 1000 - 1000 ))"
lines=$(wc -l < "$work/in.txt")

bench_mode() { # MODE: prints one result line
  local sock=$work/ctl.sock rates=() retr=()
  rm -f "$work/b.db"*
  ip netns exec "$A" "$build/ctrlplane/tallyd" --port=net_af_xdp0,iface=xa --sink=sqlite \
    --sqlite_path="$work/b.db" --spool_dir="$work/spool" --ctl_socket="$sock" --window_ms=60000 --flush_interval_ms=200 \
    --ack_mode="$1" --dedup_capacity=8388608 --table_rows=65536 --metrics_addr= \
    -- -l 0-1 "${eal[@]}" --file-prefix "cb-$$" > "$work/tallyd.log" 2>&1 &
  local t=$!
  pids+=("$t")
  for _ in $(seq 300); do ip netns exec "$A" "$build/ctrlplane/tallyctl" -s "$sock" status > /dev/null 2>&1 && break; sleep 0.1; done
  for _ in $(seq "$runs"); do
    local t0 t1
    t0=$(date +%s%N)
    ip netns exec "$P" "$build/client/tally-send" --appliance 10.80.0.1:7000 --ack-timeout 1000 \
      < "$work/in.txt" > "$work/send.txt" 2>&1 || { cat "$work/send.txt"; echo "tally-send failed"; exit 1; }
    t1=$(date +%s%N)
    rates+=("$(( lines * 1000000000 / (t1 - t0) ))")
    retr+=("$(awk '$1 == "retransmits" { print $2 }' "$work/send.txt")")
  done
  ip netns exec "$A" "$build/ctrlplane/tallyctl" -s "$sock" stop > /dev/null
  wait "$t" || true
  # Where datagrams died, if any did: tallyd's own port and XDP counters.
  awk '$1 ~ /^(port_imissed|port_rx_nombuf|xdp_redirect|xdp_drop_no_socket|tly1_datagrams|drop_duplicate)$/ { printf "  %s %s", $1, $2 } END { print "" }' "$work/tallyd.log"
  python3 - "$1" "$lines" "${rates[*]}" "${retr[*]}" <<'PY'
import statistics, sys
mode, n, rates, retr = sys.argv[1], int(sys.argv[2]), [int(x) for x in sys.argv[3].split()], sys.argv[4]
print(f"{mode:10} {n} events: {statistics.median(rates) / 1e3:.0f}k events/s "
      f"[{min(rates) / 1e3:.0f}k-{max(rates) / 1e3:.0f}k] over {len(rates)} runs; retransmits per run: {retr}")
PY
}
echo "tally-send -> tallyd (net_af_xdp, veth), $runs runs per mode, $(nproc) cores"
bench_mode accepted
bench_mode committed
