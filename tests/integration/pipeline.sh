#!/usr/bin/env bash
# The worker's whole per-packet path without a port (tally-pipeline): TLY1 with
# duplicates, malformed datagrams, IPv6 and VLAN frames, and StatsD with bad
# lines; the worker's counters must equal what the generator says the datagrams
# hold (every rejection reason, every duplicate, every accepted event), including
# across table resets.
. "$(dirname "$0")/lib.sh"
pipe=$build/perf/tally-pipeline

run() {
  "$pipe" "$@" --seconds 0.5 --dedup-capacity 1048576 --flows 16 \
    -- -l 0 "${eal_base[@]}" --file-prefix "tally-pipe-$$" --no-telemetry > "$work/out" 2>&1 ||
    { cat "$work/out"; fail "tally-pipeline $* failed"; }
  grep -q '^check OK' "$work/out" || { cat "$work/out"; fail "tally-pipeline $*: counters differ"; }
  echo "ok: $* -> $(grep -E '^(events|table_resets) ' "$work/out" | tr '\n' ' ')"
}

run --proto tly1 --keys 5000 --events-per-dgram 8 --dup-rate 0.05 --malformed-rate 0.02 \
  --table-rows 4096 --ipv6-share 0.3 --vlan-share 0.2 --time-span-ms 30000
run --proto tly1 --keys 100000 --events-per-dgram 1 --dup-rate 0.1 --malformed-rate 0.05 \
  --table-rows 65536 --key-len 40
run --proto statsd --keys 2000 --events-per-dgram 20 --malformed-rate 0.05 --table-rows 8192
echo "PASS pipeline"
