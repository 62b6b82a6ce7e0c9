#!/usr/bin/env bash
# Runs the PostgreSQL sink's cmocka test (tests/test_sink_pg.c) against a
# private PostgreSQL 15 primary (fsync on: its last test crashes it) with a
# synchronous standby, for the failover test. Skips (77) where PostgreSQL is
# not installed.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"
pg_available || { echo "SKIP: no PostgreSQL 15 (deploy/install-deps.sh installs it)"; exit 77; }

pg_start primary on
pg_start_standby standby primary
# What the failover test runs when it wants the primary dead and the standby promoted.
cat > "$work/failover.sh" <<SH
#!/usr/bin/env bash
set -e
$(declare -f pg_as)
pg_as "$pg_bin/pg_ctl" -D "$(pg_dir primary)/data" -m immediate -w stop >/dev/null
pg_as "$pg_bin/pg_ctl" -D "$(pg_dir standby)/data" -w -t 60 promote >/dev/null
SH
chmod +x "$work/failover.sh"

TALLY_PG_CONNINFO=$(pg_conninfo primary) TALLY_PG_PASSWORD=$pg_password \
  TALLY_PG_PID=$(pg_pid primary) \
  TALLY_PG_FAILOVER_CONNINFO="host=127.0.0.1,127.0.0.1 port=$(pg_port primary),$(pg_port standby) dbname=postgres user=postgres password=$pg_password target_session_attrs=read-write" \
  TALLY_PG_FAILOVER_CMD="$work/failover.sh" "$build/tests/test_sink_pg"
echo "PASS sink_pg"
