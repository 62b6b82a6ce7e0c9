#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The sink benchmark driver: rows/s each sink commits for batches of 10k, 100k
# and 1M rows (median and range of 3 runs, tally-sink-bench), for SQLite,
# PostgreSQL with 1 shard and with 3 shards (three servers, the batch split by
# the hash ring), on servers it starts itself (tests/integration/pg_lib.sh:
# loopback, temporary directories, stopped on exit) with fsync on, as a
# production server runs.
#
# A 1M-row batch takes about 15 s on PostgreSQL on the 2-core dev VM, and
# sink_timeout_ms bounds every call (the COPY upsert is one call), so the
# bench raises the timeout to 10 minutes; tallyd needs the same for batches
# that large.
#
#   perf/sink_bench.sh [BUILD_DIR] [ROWS_LIST] [CASES]
#   (defaults: build, 10000,100000,1000000, "sqlite pg1 pg3")
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
export TALLY_BUILD=$(cd "${1:-$src/build}" && pwd) TALLY_SRC=$src
rows=${2:-10000,100000,1000000}
cases=" ${3:-sqlite pg1 pg3} "
bench=$TALLY_BUILD/perf/tally-sink-bench
[ -x "$bench" ] || { echo "sink_bench.sh: no $bench (ninja -C build first)" >&2; exit 2; }
. "$src/tests/integration/lib.sh"
. "$src/tests/integration/pg_lib.sh"
pg_available || { echo "sink_bench.sh: no PostgreSQL 15 (deploy/install-deps.sh)" >&2; exit 2; }
common=(--rows "$rows" --runs 3 --batches 2 --timeout-ms 600000)

echo "# tally-sink-bench, $(date -u '+%Y-%m-%d %H:%M') UTC, $(nproc) cores, rows/s, 2 batches per run over the same keys"
[[ $cases != *" sqlite "* ]] || "$bench" --sink sqlite --path "$work/bench.db" "${common[@]}"
for s in p1 p2 p3; do pg_start "$s" on; done
[[ $cases != *" pg1 "* ]] || "$bench" --sink postgres --conninfo "$(pg_conninfo p1)" "${common[@]}"
pg_psql p1 "SET client_min_messages = warning; DROP TABLE IF EXISTS tally_counts, tally_batches"
[[ $cases != *" pg3 "* ]] || "$bench" --sink postgres --shard "$(pg_conninfo p1)" \
  --shard "$(pg_conninfo p2)" --shard "$(pg_conninfo p3)" "${common[@]}"
pg_stop_all; pg_names=()
# Redis and Redis Cluster: tally-sink-bench does not know them in this version
# (they come from another branch); when it does, start them here with
# tests/integration/redis_lib.sh (redis_start, redis_cluster_start).
if ! "$bench" --help 2>&1 | grep -q redis; then
  echo "# redis, redis-cluster: not measured (tally-sink-bench has no --sink redis yet)"
fi
