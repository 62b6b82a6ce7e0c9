#!/usr/bin/env bash
# The benchmark driver's own tools behave as perf/bench.py relies on:
#  - tally-gen --paced drops what the port refuses at once and counts it
#    (frames_tx_failed, exit 1), never retries or stalls: a net_ring port that
#    nobody reads takes its ring's worth and refuses the rest;
#  - without --paced the same port is a stalled receiver: tally-gen gives up
#    after --stall-timeout and says so;
#  - paced, a generator stopped for a while (SIGSTOP, as when its CPU is taken)
#    catches up within --catch-up-us, so it offers the asked rate, and skips
#    (frames_behind_skipped) what fell further behind;
#  - tally-pipeline --datagrams N processes exactly N datagrams (a fixed input
#    for callgrind), checked against the generator's counts;
#  - tally-pipeline --workers 2 (perf/bench.py's two-workers step): two workers
#    on one dedup table split the N datagrams, both work, and each one's
#    counters equal what its own frames hold;
#  - tally-pipeline --slice-seconds (the drift step) prints a slice line every
#    slice, each with the worker's figures and the machine's speed probes.
#  - tally-line-probe times its four access patterns and refuses bad sizes;
#  - tally-cpu-gaps (the 90% run's machine-alone column) counts the time its
#    CPU was taken: a 60 ms SIGSTOP is a gap over 10 ms, about 60 ms long;
#    with --touch-mb it also touches a table that large, and says so;
#  - bench.py finds the worker's busiest second in its once-a-second samples,
#    and sets the 90% run's rate from the right reference.
. "$(dirname "$0")/lib.sh"
pipeline=$build/perf/tally-pipeline

gaps=$build/perf/tally-cpu-gaps
"$gaps" --cpu 1 --seconds 0 2> /dev/null && fail "tally-cpu-gaps took --seconds 0"
# stopped well after its 0.2 s calibration, well before its 3 s end
"$gaps" --cpu 1 --seconds 3 --busy-cpu 0 > "$work/gaps.txt" & gp=$!
sleep 1; kill -STOP "$gp"; sleep 0.06; kill -CONT "$gp"
wait "$gp" || fail "tally-cpu-gaps exited $?"
cat "$work/gaps.txt"
expect_counter "$work/gaps.txt" gaps_10ms -ge 1
expect_counter "$work/gaps.txt" gaps_1ms -ge "$(counter "$work/gaps.txt" gaps_10ms)"
awk '$1 == "longest_ms" { exit !($2 >= 50 && $2 < 1500) }' "$work/gaps.txt" ||
  fail "tally-cpu-gaps: longest gap $(counter "$work/gaps.txt" longest_ms) ms for a 60 ms stop"
pgrep -f "tally-cpu-gaps --cpu 1 --seconds 3" && fail "tally-cpu-gaps left its spinner running"
# --touch-mb: the same probe touching a table as the worker does
"$gaps" --cpu 1 --seconds 0.5 --touch-mb 64 > "$work/touch.txt"
expect_counter "$work/touch.txt" touch_mb -eq 64
"$gaps" --cpu 1 --seconds 0.5 --touch-mb 999999999 2> "$work/touch.err" &&
  fail "tally-cpu-gaps mapped 954 TiB"
grep -q "cannot map" "$work/touch.err" || fail "tally-cpu-gaps: $(cat "$work/touch.err")"
# tally-line-probe: every pattern timed, the ratios to "two" printed, bad sizes refused
probe=$build/perf/tally-line-probe
"$probe" --mb 64 --ops 100000 --rounds 2 > "$work/probe.txt"
awk '$2 == "cycles_per_op" && $3 > 0 && $5 > 0 { n++ } END { exit n != 4 }' "$work/probe.txt" ||
  fail "tally-line-probe: not 4 timed patterns: $(cat "$work/probe.txt")"
awk '$1 == "two" { exit $5 != 1.000 }' "$work/probe.txt" || fail "tally-line-probe: two's ratio to itself"
"$probe" --mb 64 --ahead 0 2> /dev/null && fail "tally-line-probe took --ahead 0"
"$probe" --mb 8 2> /dev/null && fail "tally-line-probe took an 8 MiB table"
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

# net_null takes every frame: only the generator's own stops can cost frames
paced_stops() { # $1 = --catch-up-us; four 0.1 s stops inside a 4 s run at 200k/s
  "$gen" --proto tly1 --keys 100 --duration 4 --rate 200000 --paced --catch-up-us "$1" \
    --port net_null0 -- -l 0 "${eal_base[@]}" --file-prefix "tally-null-$$" \
    --vdev net_null0 > "$work/stops-$1.txt" & local gp=$!
  sleep 1.5
  for _ in 1 2 3 4; do kill -STOP "$gp"; sleep 0.1; kill -CONT "$gp"; sleep 0.4; done
  wait "$gp" || fail "tally-gen --paced on net_null exited $?"
}
paced_stops 1000000
sent=$(counter "$work/stops-1000000.txt" datagrams_sent)
skipped=$(counter "$work/stops-1000000.txt" frames_behind_skipped)
[ "$skipped" = 0 ] && [ "$sent" -ge 790000 ] ||
  fail "paced, 1 s to catch up: $sent sent, $skipped skipped (want ~800000 and 0)"
paced_stops 0
skipped=$(counter "$work/stops-0.txt" frames_behind_skipped)
[ "$skipped" -ge 15000 ] || fail "paced, no catch-up: $skipped skipped after 0.1 s stops at 200k/s"
echo "ok: paced: stops caught up within --catch-up-us ($sent sent, none skipped), else skipped ($skipped)"

"$pipeline" --proto statsd --events-per-dgram 3 --keys 500 --pool 512 --datagrams 1000 \
  --dedup-capacity 100000 --table-rows 16384 -- -l 0 "${eal_base[@]}" \
  --file-prefix "tally-pipe-$$" > "$work/pipe.txt"
cat "$work/pipe.txt"
grep -qx "datagrams 1000" "$work/pipe.txt" || fail "tally-pipeline --datagrams 1000 did not process 1000"
grep -qx "check OK" "$work/pipe.txt" || fail "tally-pipeline counters differ from the generator's"
# two lcores: on CPUs 0 and 1, or both on CPU 0 on a one-CPU runner
cpu1=$(( $(nproc) > 1 ? 1 : 0 ))
"$pipeline" --proto tly1 --events-per-dgram 4 --keys 500 --pool 512 --dup-rate 0.05 \
  --malformed-rate 0.02 --datagrams 4000 --workers 2 --dedup-capacity 100000 --table-rows 16384 \
  -- --lcores "0@0,1@$cpu1" "${eal_base[@]}" --file-prefix "tally-pipe2-$$" > "$work/pipe2.txt"
cat "$work/pipe2.txt"
field() { awk -v k="$1" '$1 == k {print $2}' "$work/pipe2.txt"; }
[ "$(field datagrams)" = 4000 ] || fail "tally-pipeline --workers 2 --datagrams 4000 did not process 4000"
[ "$(field workers)" = 2 ] || fail "tally-pipeline --workers 2 did not run 2 workers"
[ "$(field worker0_events)" -gt 0 ] && [ "$(field worker1_events)" -gt 0 ] ||
  fail "a worker of the two processed nothing"
[ $(( $(field worker0_events) + $(field worker1_events) )) = "$(field events)" ] ||
  fail "the workers' events do not add up to the total"
grep -qx "check OK" "$work/pipe2.txt" || fail "tally-pipeline --workers 2: counters differ from the generator's"
echo "ok: two workers on one dedup table, each exact"

"$pipeline" --proto tly1 --events-per-dgram 8 --keys 500 --pool 512 --seconds 1.2 \
  --slice-seconds 0.3 --dedup-capacity 100000 --table-rows 16384 -- -l 0 "${eal_base[@]}" \
  --file-prefix "tally-pipe3-$$" > "$work/pipe3.txt"
grep '^slice ' "$work/pipe3.txt"
grep -qx "check OK" "$work/pipe3.txt" || fail "tally-pipeline --slice-seconds: counters differ"
# slice I t T events N cycles_per_event C cycles_per_event_p50 P probe_mul_cycles M probe_hop_cycles H probe_llc_hop_cycles L
awk '$1 == "slice" { n++; if (!($6 > 0 && $8 > 0 && $10 > 0 && $12 > 100000 && $14 > 1 && $16 > 1 && $4 > last)) bad++; last = $4 }
     END { exit !(n >= 3 && bad == 0) }' "$work/pipe3.txt" ||
  fail "tally-pipeline --slice-seconds 0.3 over 1.2 s: not 3 well-formed slices"
echo "ok: a sliced run reports the worker and the speed probes every slice"
# perf/bench.py's busiest second of a 90% run, from tallyctl stats read once a
# second: (seconds, events_in, worker_cycles) at 1 GHz; busy 50%, then 100% at
# 400 cycles/event, 25%, then a second without traffic (not a slice)
python3 - "$src/perf" <<'PY' || fail "bench.py: the busiest second misread"
import sys
sys.path.insert(0, sys.argv[1])
import bench
bench.nominal_hz = lambda: 1e9
s = bench.slowest_second([(0, 0, 0), (1, 1e6, 5e8), (2, 3.5e6, 1.5e9), (3, 4e6, 1.75e9),
                          (4, 4e6, 1.75e9)])
assert s == dict(at_s=2, busy=1.0, cycles=400.0, full=1), s
assert bench.slowest_second([(0, 0, 0)]) is None
# the 90% run's rate: the unpaced run right before, unless it failed or
# --loss-ref table asks for the 10 s runs' median
assert bench.loss_rate("before", 2.0, 3.0) == (0.9 * 2e6, "before")
assert bench.loss_rate("before", 0, 3.0) == (0.9 * 3e6, "table")
assert bench.loss_rate("table", 2.0, 3.0) == (0.9 * 3e6, "table")
assert bench.loss_rate("before", 0, None) == (0, "table")
PY
echo "ok: the driver finds the worker's busiest second and the 90% run's reference"
echo "PASS bench-tools"
