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
# The archive hand-off (--archive: a real archiver thread): every datagram is
# archived or counted under archive_ring_full, and counted either way. Bursts of
# 256 hold more datagrams than a worker's 32 notes: the rest of each burst takes
# the ring-full path, and the merge pass frees exactly the mbufs not given.
archive_run() {
  local burst=$1 n=$2
  "$pipe" --proto tly1 --keys 5000 --events-per-dgram 4 --dup-rate 0.05 --malformed-rate 0.02 \
    --burst "$burst" --datagrams $(( burst * n )) --dedup-capacity 1048576 --flows 16 --archive "$work/arch$burst" \
    -- -l 0 "${eal_base[@]}" --file-prefix "tally-pipe-$$" --no-telemetry > "$work/out" 2>&1 ||
    { cat "$work/out"; fail "tally-pipeline --archive --burst $burst failed"; }
  grep -q '^check OK' "$work/out" || { cat "$work/out"; fail "tally-pipeline --archive: counters differ"; }
  v() { awk -v k="$1" '$1 == k { print $2 }' "$work/out"; }
  [ "$(v datagrams)" = $(( burst * n )) ] || fail "--datagrams did not run $(( burst * n )) datagrams"
  [ $(( $(v archive_datagrams) + $(v archive_ring_full) )) -eq $(( burst * n )) ] ||
    { cat "$work/out"; fail "archived + ring full is not every datagram"; }
  [ "$(v archive_ring_full)" -ge $(( (burst - 32) * n )) ] || fail "more than 32 notes a burst"
  echo "ok: --archive --burst $burst: $(v archive_datagrams) archived, $(v archive_ring_full) left out"
}
archive_run 32 2000
archive_run 256 500
echo "PASS pipeline"
