#!/usr/bin/env bash
# Runs the PostgreSQL sink's cmocka test (tests/test_sink_pg.c) against a
# private PostgreSQL 15 server, then again against a primary/standby pair for
# failover. Skips (77) where PostgreSQL is not installed.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"
pg_available || { echo "SKIP: no PostgreSQL 15 (deploy/install-deps.sh installs it)"; exit 77; }

pg_start unit
TALLY_PG_CONNINFO=$(pg_conninfo unit) TALLY_PG_PASSWORD=$pg_password \
  TALLY_PG_PID=$(pg_pid unit) "$build/tests/test_sink_pg"
echo "PASS sink_pg"
