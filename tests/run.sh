#!/usr/bin/env bash
# The whole test suite, as CI runs it on a fresh Debian 12 machine (as root):
#  1. install every package (deploy/install-deps.sh),
#  2. default build (-Wall -Wextra -Werror): unit tests (cmocka) and integration
#     tests (tally-gen -> tallyd over net_pcap and net_memif -> SQLite, exact totals),
#  3. ASan+UBSan build: unit tests and the pcap integration test,
#  4. libFuzzer (clang) on the TLY1 and StatsD parsers for a bounded time,
#  5. micro-benchmark smoke run (proves the perf tools build and run; no timing asserted).
set -euo pipefail
cd "$(dirname "$0")/.."
fuzz_seconds=${TALLY_FUZZ_SECONDS:-60}

step() { printf '\n==== %s\n' "$*"; }
# meson test, keeping its summary so the closing line can count every test.
results=$(mktemp)
mtest() { meson test "$@" | tee -a "$results"; }

step "install dependencies"
bash deploy/install-deps.sh

step "default build"
[ -f build/build.ninja ] || meson setup build
ninja -C build

step "unit and integration tests"
mtest -C build --print-errorlogs --num-processes 2

step "ASan+UBSan build"
[ -f build-asan/build.ninja ] || meson setup build-asan -Db_sanitize=address,undefined \
  -Db_lundef=false -Dbuildtype=debug
ninja -C build-asan
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  mtest -C build-asan --print-errorlogs --num-processes 2 --suite unit
# DPDK's EAL is not leak-clean at exit; the dataplane under ASan is what matters here.
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  mtest -C build-asan --print-errorlogs pcap

step "libFuzzer: ${fuzz_seconds}s per parser"
[ -f build-fuzz/build.ninja ] || CC=clang meson setup build-fuzz -Dfuzz=true -Ddpdk=disabled \
  -Dtests=disabled -Db_sanitize=address,undefined -Db_lundef=false
ninja -C build-fuzz tests/fuzz_tly1 tests/fuzz_statsd
# The floors prove the parsers are instrumented (the harness alone covered 32 edges;
# the seed corpora alone reach 131 and 502).
declare -A cov_floor=([tly1]=120 [statsd]=450)
for f in tly1 statsd; do
  corpus=$(mktemp -d); cp tests/fuzz/corpus/$f/* "$corpus/"
  out=$(build-fuzz/tests/fuzz_$f -max_total_time="$fuzz_seconds" -print_final_stats=1 \
    "$corpus" 2>&1) || { echo "$out" | tail -n 40; echo "fuzz_$f failed"; exit 1; }
  rm -rf "$corpus"
  echo "$out" | tail -n 12
  cov=$(echo "$out" | awk '/DONE/ { for (i = 1; i < NF; i++) if ($i == "cov:") c = $(i + 1) } END { print c + 0 }')
  echo "fuzz_$f: $cov edges covered (floor ${cov_floor[$f]})"
  [ "$cov" -ge "${cov_floor[$f]}" ] || { echo "fuzz_$f: coverage below the floor"; exit 1; }
done

step "micro-benchmark smoke run"
build/perf/tally-micro --quick

step "all suites passed"
# One plain closing line: every meson test that ran (a failure stopped us above).
passed=$(awk '$1 == "Ok:" { n += $2 } END { print n + 0 }' "$results")
rm -f "$results"
echo "tests: $passed passed, 0 failed"
