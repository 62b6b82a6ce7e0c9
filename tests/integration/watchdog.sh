#!/usr/bin/env bash
# The watchdog: worker 0 is parked for 5 s by the test hook (`tallyctl debug
# park-worker`) while tally-gen sends to it over memif. Within a second of the
# park `tallyctl status` must show it stalled, /metrics tally_worker_up 0 and
# the log a line naming worker and lcore; then it recovers, and the totals are
# still exact (the generator retried what the full ring refused). The park is a
# poll gap (worker_poll_gaps_*); a spinner on the worker's CPU afterwards is
# CPU taken from it (worker_preempted, worker_cpu_taken_us).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/metrics_lib.sh"
sock=$work/memif.sock
ms() { date +%s%3N; }

"$tallyd" --window_ms 10000 --sqlite_path "$work/tally.db" --ctl_socket "$work/ctl.sock" \
  --stop_after_idle_ms 10000 --run_ms 120000 --dedup_capacity 1048576 --table_rows 131072 \
  --flush_interval_ms 300 --port "net_memif0,role=server,socket=$sock,socket-abstract=no" \
  -- --lcores "0@0,1@1" "${eal_test[@]}" 2> "$work/tallyd.log" &
tpid=$!; pids+=("$tpid")
wait_ready "$work/ctl.sock" "$work/tallyd.log"
mport=$(metrics_port "$work/ctl.sock")

"$gen" --proto tly1 --keys 2000 --events-per-dgram 4 --count 40000 --rate 10000 \
  --dup-rate 0.05 --time-ms "$now_ms" --time-span-ms 20000 --window-ms 10000 --seed 41 \
  --linger 30 --stall-timeout 30 --port "net_memif0,role=client,socket=$sock,socket-abstract=no" \
  --expected "$work/expected.tsv" -- -l 0 "${eal_gen[@]}" > "$work/gen.txt" &
gpid=$!; pids+=("$gpid")
# Park once traffic flows, so frames arrive while the worker is parked.
for _ in $(seq 100); do
  "$tallyctl" -s "$work/ctl.sock" stats --json > "$work/s.json"
  [ "$(jfield "$work/s.json" counters rx_packets)" -gt 0 ] && break
  sleep 0.1
done
rx_before=$(jfield "$work/s.json" counters rx_packets)
t0=$(ms)
"$tallyctl" -s "$work/ctl.sock" debug park-worker 0 5000 | grep -q parked || fail "park-worker refused"
# Polled with tallyctl and grep alone: cheap, so the poll itself adds little.
stalled=false
while [ $(( $(ms) - t0 )) -lt 2000 ]; do
  "$tallyctl" -s "$work/ctl.sock" status > "$work/st.txt"
  grep -qE '^worker 0 .*: stalled$' "$work/st.txt" && { stalled=true; break; }
  sleep 0.02
done
seen=$(( $(ms) - t0 ))
$stalled || { cat "$work/st.txt"; fail "worker 0 not reported stalled 2 s after the park"; }
cat "$work/st.txt"
http_get "http://127.0.0.1:$mport/metrics" > "$work/m1.txt"
grep -qx 'tally_worker_up{worker="0",lcore="1"} 0' "$work/m1.txt" || fail "metric not 0"
echo "ok: tally_worker_up{worker=\"0\"} 0 while parked"
# Parked means not polling: rx_packets stands still (checked only if the park
# is not over by the second read, which a loaded machine can delay).
"$tallyctl" -s "$work/ctl.sock" stats > "$work/s2.txt"
sleep 0.3
"$tallyctl" -s "$work/ctl.sock" stats > "$work/s3.txt"
"$tallyctl" -s "$work/ctl.sock" status > "$work/st2.txt"
rx_parked=$(counter "$work/s2.txt" rx_packets)
if grep -qE '^worker 0 .*: stalled$' "$work/st2.txt"; then
  [ "$(counter "$work/s3.txt" rx_packets)" = "$rx_parked" ] ||
    fail "rx_packets moved while worker 0 was parked: the hook did not park it"
  echo "ok: rx_packets stood at $rx_parked while parked"
fi
# The daemon's own latency: the silence it logged, plus at most one 100 ms
# check period before it noticed the last beat. What this script sees adds its
# own tallyctl round trips, slow on a loaded machine: bounded loosely.
silent=$(sed -n 's/.*watchdog: worker 0 (lcore 1) stalled: no heartbeat for \([0-9]*\) ms.*/\1/p' \
  "$work/tallyd.log" | head -1)
[ -n "$silent" ] || fail "no stall log line"
[ $((silent + 100)) -le 1000 ] || fail "stall detected after $silent ms of silence"
[ "$seen" -le 2000 ] || fail "worker 0 shown stalled by tallyctl only after $seen ms"
echo "ok: stall detected after at most $((silent + 100)) ms; tallyctl status showed it $seen ms after the park"
"$tallyctl" -s "$work/ctl.sock" status --json > "$work/st.json"
[ "$(jfield "$work/st.json" workers 0 state)" = stalled ] || fail "status --json: not stalled"
grep -q 'watchdog: worker 0 (lcore 1) stalled' "$work/tallyd.log" || fail "no stall log line"
echo "ok: log: $(grep 'watchdog: worker 0' "$work/tallyd.log" | head -1)"

for _ in $(seq 60); do
  "$tallyctl" -s "$work/ctl.sock" status --json > "$work/st.json"
  [ "$(jfield "$work/st.json" workers 0 state)" = running ] && break
  sleep 0.1
done
[ "$(jfield "$work/st.json" workers 0 state)" = running ] || fail "worker 0 did not recover"
echo "ok: worker 0 running again $(( $(ms) - t0 )) ms after the park"
# Another task on the worker's CPU for 1 s: the kernel shares the CPU, and
# tallyd reads how much of it the worker lost (worker_cpu_taken_us, checked
# at the end; sleeping in the park above is voluntary and is not counted).
taskset -c 1 timeout 1 sh -c 'while :; do :; done' || true
# The metrics' snapshot is at most 100 ms behind status.
for _ in $(seq 20); do
  http_get "http://127.0.0.1:$mport/metrics" > "$work/m2.txt"
  grep -qx 'tally_worker_up{worker="0",lcore="1"} 1' "$work/m2.txt" && break
  sleep 0.1
done
grep -qx 'tally_worker_up{worker="0",lcore="1"} 1' "$work/m2.txt" || fail "metric not back to 1"
grep -qE '^tally_watchdog_stalls_total [1-9]' "$work/m2.txt" || fail "watchdog_stalls not counted"

wait "$tpid" || { cat "$work/tallyd.log"; fail "tallyd exited with an error"; }
wait "$gpid" || { cat "$work/gen.txt"; fail "tally-gen failed"; }
cat "$work/tallyd.log"
echo "rx_packets: $rx_before before the park, $rx_parked while parked"
[ "$(gen_summary "$work/gen.txt" frames_tx_failed)" = 0 ] || fail "generator gave up on frames"
[ "$(gen_summary "$work/gen.txt" tx_retries)" -gt 0 ] || fail "no tx retries: the park blocked nothing"
"$check" "$work/expected.tsv" "$work/tally.db"
expect_counter "$work/tallyd.log" rx_packets -eq "$(gen_summary "$work/gen.txt" datagrams_sent)"
# One stall of worker 0; a loaded test machine may also starve the flusher
# (nice 10) past 500 ms, which the watchdog rightly counts too.
[ "$(grep -c 'watchdog: worker 0 (lcore 1) stalled' "$work/tallyd.log")" = 1 ] ||
  fail "worker 0 not reported stalled exactly once"
expect_counter "$work/tallyd.log" watchdog_stalls -ge 1
expect_counter "$work/tallyd.log" watchdog_rx_lost -eq 0
expect_counter "$work/tallyd.log" worker_preempted -ge 1
expect_counter "$work/tallyd.log" worker_cpu_taken_us -ge 100000
grep -qE '^tally_worker_cpu_taken_seconds_total [0-9.]+$' "$work/m2.txt" ||
  fail "no tally_worker_cpu_taken_seconds_total in /metrics"
# The 5 s park is a poll gap over 10 ms, so over 1 ms and 100 us as well.
expect_counter "$work/tallyd.log" worker_poll_gaps_10ms -ge 1
expect_counter "$work/tallyd.log" worker_poll_gaps_1ms -ge "$(counter "$work/tallyd.log" worker_poll_gaps_10ms)"
expect_counter "$work/tallyd.log" worker_poll_gaps_100us -ge "$(counter "$work/tallyd.log" worker_poll_gaps_1ms)"
echo "PASS watchdog"
