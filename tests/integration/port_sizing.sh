#!/usr/bin/env bash
# The RX pool is sized by the formula, not a constant: 16 RX queues x 1024
# descriptors on a 16-queue vdev start with the derived mbuf count (the old
# default, 16383, is below the 16384 descriptors alone, and a NIC that fills
# its rings at start failed with it), the link status is reported, and an
# explicit mbufs below the need is refused at start naming the key and number.
. "$(dirname "$0")/lib.sh"

common=(--port=net_null0 --rx_queues=16 --rx_desc=1024 --table_rows=1024
        --dedup_capacity=1024 --sqlite_path="$work/t.db" --ctl_socket="$work/c.sock")

timeout 60 "$tallyd" "${common[@]}" --run_ms=500 -- -l 0-1 "${eal_test[@]}" \
  > "$work/ok.log" 2>&1 || { cat "$work/ok.log"; fail "tallyd with 16 queues did not start"; }
# 16 x 1024 + 512 TX + 1 worker x (32 + 256 + 128) = 17312, rounded up to 2^k - 1
grep -qF 'RX pool: 32767 mbufs on socket' "$work/ok.log" || { cat "$work/ok.log"; fail "pool not derived"; }
grep -qF '(17312 needed)' "$work/ok.log" || { cat "$work/ok.log"; fail "need not reported"; }
grep -qE 'port 0 \(net_null\): link (up|down)' "$work/ok.log" || { cat "$work/ok.log"; fail "no link status"; }
echo "ok: $(grep -F 'RX pool' "$work/ok.log")"
echo "ok: $(grep -F 'link' "$work/ok.log")"

if timeout 60 "$tallyd" "${common[@]}" --mbufs=16383 -- -l 0-1 "${eal_test[@]}" \
  > "$work/small.log" 2>&1; then
  cat "$work/small.log"; fail "tallyd accepted mbufs=16383 for 16 x 1024 descriptors"
fi
grep -qF 'mbufs: 16383 is too few' "$work/small.log" || { cat "$work/small.log"; fail "unclear refusal"; }
grep -qF 'at least 17312' "$work/small.log" || { cat "$work/small.log"; fail "refusal lacks the number"; }
echo "ok: $(grep -F 'mbufs:' "$work/small.log")"
echo "PASS port-sizing"
