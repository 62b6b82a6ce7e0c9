#!/usr/bin/env bash
# The archive's cost on the worker core and its size, for bench.py's scenarios
# A (TLY1, 1 event/datagram) and B (32 events/datagram, Zipf): tally-pipeline
# runs the same frames without the archive and with --archive (the hand-off to
# a real archiver thread on another CPU), alternating, RUNS times each, and
# prints the median cycles per event of each, the added cost in percent (goal:
# at most 10%), and the archive's compressed bytes per event and per datagram.
# Two figures per run: the mean over all timed bursts (cycles_per_event), which
# holds the time other processes ran on the worker's CPU, and the median
# burst's (cycles_per_event_p50), which does not; and the worker's preemptions.
# A BASE=path/to/other/tally-pipeline (e.g. a build of main) is run too, to show
# that moving the apply code to dataplane/apply.h changed nothing.
#   perf/archive_cost.sh [BUILD] [RUNS] [SECONDS]
set -euo pipefail
build=${1:-build}; runs=${2:-3}; secs=${3:-3}
pipe=$build/perf/tally-pipeline
common=(--dup-rate 0.05 --malformed-rate 0.01 --window-ms 10000 --flows 64
        --table-rows 1310720 --dedup-capacity 8388608 --seconds "$secs")
A=(--proto tly1 --events-per-dgram 1 --keys 1000000 --pool 4194304)
B=(--proto tly1 --events-per-dgram 32 --keys 1000000 --dist zipf --zipf-s 1.1 --pool 131072)
tmp=$(mktemp -d /tmp/tally-archcost.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
eal=(-- -l 1 --no-huge --no-pci -m 1024 --log-level='*:warning' --file-prefix "archcost-$$")
val() { awk -v k="$1" '$1 == k { print $2 }' "$2"; }
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
for sc in A B; do
  declare -n opts=$sc
  : > "$tmp/off"; : > "$tmp/on"; : > "$tmp/base"
  : > "$tmp/off50"; : > "$tmp/on50"; : > "$tmp/offpre"; : > "$tmp/onpre"
  for i in $(seq "$runs"); do
    "$pipe" "${opts[@]}" "${common[@]}" "${eal[@]}" > "$tmp/r" || { cat "$tmp/r"; exit 1; }
    val cycles_per_event "$tmp/r" >> "$tmp/off"
    val cycles_per_event_p50 "$tmp/r" >> "$tmp/off50"
    val worker_preempted "$tmp/r" >> "$tmp/offpre"
    rm -rf "$tmp/arch"
    "$pipe" "${opts[@]}" "${common[@]}" --archive "$tmp/arch" "${eal[@]}" > "$tmp/r" ||
      { cat "$tmp/r"; exit 1; }
    val cycles_per_event "$tmp/r" >> "$tmp/on"
    val cycles_per_event_p50 "$tmp/r" >> "$tmp/on50"
    val worker_preempted "$tmp/r" >> "$tmp/onpre"
    cp "$tmp/r" "$tmp/last_on"
    if [ -n "${BASE:-}" ]; then
      "$BASE" "${opts[@]}" "${common[@]}" "${eal[@]}" > "$tmp/r" || { cat "$tmp/r"; exit 1; }
      val cycles_per_event "$tmp/r" >> "$tmp/base"
    fi
  done
  off=$(median < "$tmp/off"); on=$(median < "$tmp/on")
  echo "scenario $sc: cycles_per_event off $off on $on (runs: $(paste -sd' ' "$tmp/off") | $(paste -sd' ' "$tmp/on"))"
  [ -s "$tmp/base" ] && echo "scenario $sc: cycles_per_event base $(median < "$tmp/base") (runs: $(paste -sd' ' "$tmp/base"))"
  awk -v a="$off" -v b="$on" -v s="$sc" 'BEGIN { printf "scenario %s: archive cost on the worker %+.1f%% (mean)\n", s, (b - a) / a * 100 }'
  off50=$(median < "$tmp/off50"); on50=$(median < "$tmp/on50")
  echo "scenario $sc: cycles_per_event_p50 off $off50 on $on50 (runs: $(paste -sd' ' "$tmp/off50") | $(paste -sd' ' "$tmp/on50"))"
  awk -v a="$off50" -v b="$on50" -v s="$sc" 'BEGIN { printf "scenario %s: archive cost on the worker %+.1f%% (median burst)\n", s, (b - a) / a * 100 }'
  echo "scenario $sc: worker_preempted off $(paste -sd' ' "$tmp/offpre") | on $(paste -sd' ' "$tmp/onpre")"
  echo "scenario $sc: archive_bytes_per_event $(val archive_bytes_per_event "$tmp/last_on")" \
    "archive_bytes_per_datagram $(val archive_bytes_per_datagram "$tmp/last_on")" \
    "archive_ring_full $(val archive_ring_full "$tmp/last_on") of $(val datagrams "$tmp/last_on") datagrams"
done
