#!/usr/bin/env bash
# The benchmark driver's own tools behave as perf/bench.py relies on:
#  - tally-gen --paced drops what the port refuses at once and counts it
#    (frames_tx_failed, exit 1), never retries or stalls: a net_ring port that
#    nobody reads takes its ring's worth and refuses the rest;
#  - without --paced the same port is a stalled receiver: tally-gen gives up
#    after --stall-timeout and says so;
#  - tally-pipeline --datagrams N processes exactly N datagrams (a fixed input
#    for callgrind), checked against the generator's counts.
. "$(dirname "$0")/lib.sh"
pipeline=$build/perf/tally-pipeline
ring=(-l 0 "${eal_base[@]}" --file-prefix "tally-ring-$$" --vdev net_ring0)

set +e
"$gen" --proto tly1 --keys 100 --count 50000 --paced --port net_ring0 -- "${ring[@]}" \
  > "$work/paced.txt" 2> "$work/paced.err"
rc=$?
set -e
cat "$work/paced.txt" "$work/paced.err"
[ "$rc" = 1 ] || fail "tally-gen --paced with refused frames exited $rc, not 1"
sent=$(awk '$1 == "datagrams_sent" {print $2}' "$work/paced.txt")
failed=$(awk '$1 == "frames_tx_failed" {print $2}' "$work/paced.txt")
retries=$(awk '$1 == "tx_retries" {print $2}' "$work/paced.txt")
[ "$sent" = 50000 ] || fail "paced: $sent datagrams generated, not 50000"
[ "$failed" -gt 40000 ] && [ "$failed" -lt 50000 ] || fail "paced: $failed refused (the ring takes ~1k)"
[ "$retries" = 0 ] || fail "paced: $retries retries"
echo "ok: paced: $((sent - failed)) taken, $failed refused and counted, no retry"

set +e
timeout 60 "$gen" --proto tly1 --keys 100 --count 50000 --stall-timeout 0.5 --port net_ring0 \
  -- "${ring[@]}" > "$work/retry.txt" 2> "$work/retry.err"
rc=$?
set -e
[ "$rc" = 1 ] || { cat "$work/retry.txt" "$work/retry.err"; fail "retrying tally-gen exited $rc, not 1"; }
grep -q "took no frame" "$work/retry.err" || fail "the stalled receiver is not named"
echo "ok: without --paced a full ring is a stalled receiver: $(grep "took no frame" "$work/retry.err")"

"$pipeline" --proto statsd --events-per-dgram 3 --keys 500 --pool 512 --datagrams 1000 \
  --dedup-capacity 100000 --table-rows 16384 -- -l 0 "${eal_base[@]}" \
  --file-prefix "tally-pipe-$$" > "$work/pipe.txt"
cat "$work/pipe.txt"
grep -qx "datagrams 1000" "$work/pipe.txt" || fail "tally-pipeline --datagrams 1000 did not process 1000"
grep -qx "check OK" "$work/pipe.txt" || fail "tally-pipeline counters differ from the generator's"
echo "PASS bench-tools"
