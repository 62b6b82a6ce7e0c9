#!/usr/bin/env bash
# The archive's cost on the worker in instructions and simulated cache misses
# per event, which do not drift with the load of a shared VM as cycles do:
# tally-pipeline on a fixed input (--datagrams, 32 a burst) under callgrind with its cache
# simulator, collecting only inside tally_worker_burst (the worker's code,
# not the untimed frame rendering nor the archiver thread), without and with
# --archive, for archive_cost.sh's scenarios A and B (smaller pools and fewer
# bursts, so valgrind finishes in a minute).
# Valgrind runs one thread at a time, so the archiver runs only when the worker
# yields: the ring is mostly full here, and "ring_full" says how much.
#   perf/archive_cg.sh [BUILD] [BURSTS]
set -euo pipefail
build=${1:-build}; bursts=${2:-4000}
pipe=$(realpath "$build/perf/tally-pipeline")
common=(--dup-rate 0.05 --malformed-rate 0.01 --window-ms 10000 --flows 64
        --table-rows 1310720 --dedup-capacity 8388608 --datagrams $(( bursts * 32 )))
A=(--proto tly1 --events-per-dgram 1 --keys 1000000 --pool 262144)
B=(--proto tly1 --events-per-dgram 32 --keys 1000000 --dist zipf --zipf-s 1.1 --pool 16384)
tmp=$(mktemp -d /tmp/tally-archcg.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
eal=(-- -l 1 --no-huge --no-pci -m 1024 --log-level='*:warning' --file-prefix "archcg-$$")
val() { awk -v k="$1" '$1 == k { print $2 }' "$2"; }
for sc in A B; do
  declare -n opts=$sc
  for mode in off on; do
    arch=(); [ "$mode" = on ] && arch=(--archive "$tmp/arch")
    rm -rf "$tmp/arch"
    valgrind -q --tool=callgrind --cache-sim=yes --toggle-collect=tally_worker_burst \
      --callgrind-out-file="$tmp/cg" "$pipe" "${opts[@]}" "${common[@]}" "${arch[@]}" \
      "${eal[@]}" > "$tmp/r" 2> "$tmp/err" || { cat "$tmp/r" "$tmp/err"; exit 1; }
    ev=$(val events "$tmp/r")
    callgrind_annotate "$tmp/cg" 2>/dev/null | awk -v ev="$ev" -v sc="$sc" -v m="$mode" \
      -v rf="$(val archive_ring_full "$tmp/r")" -v dg="$(val datagrams "$tmp/r")" '
      /^Events shown:/ { for (i = 3; i <= NF; i++) name[i - 2] = $i }
      /PROGRAM TOTALS/ { gsub(",", ""); for (i = 1; i <= NF; i++) v[name[i]] = $i
        printf "scenario %s archive %-3s Ir/event %.1f  D1 misses/event %.2f  LL misses/event %.2f", sc, m,
          v["Ir"] / ev, (v["D1mr"] + v["D1mw"]) / ev, (v["DLmr"] + v["DLmw"]) / ev
        if (m == "on") printf "  ring_full %s of %s datagrams", rf, dg
        printf "\n" }'
  done
done
