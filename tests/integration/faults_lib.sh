# Helpers for the fault tests (sourced after lib.sh): tallyd live on net_memif
# fed by tally-gen at a steady rate, so faults happen under traffic; waiting
# until every accepted event is in the sink (spool drained); a clean stop.

# start_tallyd LOG ARGS...: tallyd as memif server, control socket $work/ctl.sock
start_tallyd() {
  local log=$1; shift
  rm -f "$work/ctl.sock" "$work/memif.sock"
  "$tallyd" --window_ms 10000 --ctl_socket "$work/ctl.sock" --run_ms 300000 \
    --dedup_capacity 1048576 --table_rows 131072 --flush_interval_ms 300 \
    --sink_retry_base_ms 50 --sink_retry_max_ms 500 --breaker_open_ms 500 \
    --port "net_memif0,role=server,socket=$work/memif.sock,socket-abstract=no" "$@" \
    -- --lcores 0@0,1@1 "${eal_test[@]}" 2> "$log" &
  tpid=$!; pids+=("$tpid")
  for _ in $(seq 300); do [ -S "$work/ctl.sock" ] && return 0; sleep 0.1; done
  cat "$log"; fail "tallyd did not become ready"
}

# start_gen SEED COUNT RATE: TLY1 traffic with duplicates and malformed datagrams
start_gen() {
  "$gen" --proto tly1 --keys 4000 --events-per-dgram 4 --count "$2" --rate "$3" \
    --dup-rate 0.05 --malformed-rate 0.01 --flows 16 --linger 60 \
    --time-ms "$now_ms" --time-span-ms 20000 --window-ms 10000 --seed "$1" \
    --port "net_memif0,role=client,socket=$work/memif.sock,socket-abstract=no" \
    --expected "$work/expected.tsv" -- -l 0 "${eal_gen[@]}" > "$work/gen.txt" &
  gpid=$!; pids+=("$gpid")
}

# stat NAME: one counter from the running tallyd
stat() {
  local j
  j=$("$tallyctl" -s "$work/ctl.sock" stats --json) || fail "tallyd is gone (stat $1)"
  echo "$j" | python3 -c 'import json,sys; print(json.load(sys.stdin)["counters"][sys.argv[1]])' "$1"
}

# wait_sent: the generator sent everything (it lingers until tallyd stops)
wait_sent() {
  for _ in $(seq 1200); do
    grep -q '^datagrams_sent' "$work/gen.txt" 2>/dev/null && return 0
    [ "$(stat rx_packets)" -ge "$1" ] && return 0
    sleep 0.1
  done
  fail "traffic did not arrive"
}

# wait_stored TIMEOUT_S: every accepted event flushed and committed to the sink:
# nothing queued, nothing spooled, and flush_events == events_accepted.
wait_stored() {
  local end=$((SECONDS + $1))
  while [ $SECONDS -lt $end ]; do
    "$tallyctl" -s "$work/ctl.sock" flush > /dev/null
    sleep 0.5
    local j; j=$("$tallyctl" -s "$work/ctl.sock" stats --json)
    if echo "$j" | python3 -c '
import json, sys
c = json.load(sys.stdin)["counters"]
sys.exit(0 if c["spool_records"] == 0 and c["flush_pending"] == 0 and
         c["flush_events"] == c["events_accepted"] else 1)'; then return 0; fi
  done
  "$tallyctl" -s "$work/ctl.sock" sink; "$tallyctl" -s "$work/ctl.sock" spool
  "$tallyctl" -s "$work/ctl.sock" stats | grep -E '^(events_accepted|flush_|spool_|sink_|breaker_)'
  fail "not everything reached the sink within $1 s"
}

# stop_tallyd LOG: tallyctl stop, wait for the drain, the generator lets go
stop_tallyd() {
  "$tallyctl" -s "$work/ctl.sock" stop > /dev/null
  wait "$tpid" || { cat "$1"; fail "tallyd exited with an error"; }
  wait "$gpid" 2>/dev/null || true
}
