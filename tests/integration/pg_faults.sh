#!/usr/bin/env bash
# The PostgreSQL sink under faults, with live traffic over net_memif; each part
# ends with the exact totals in PostgreSQL and the counters that tell what
# happened (errors, spooled, replayed, breaker opened, nothing lost):
#  A. the server frozen (SIGSTOP of all its processes) for 8 s, then SIGCONT:
#     calls time out (sink_timeout_ms), batches are spooled, then replayed;
#  B. the server stopped with pg_ctl -m immediate (no shutdown, like SIGKILL)
#     for 4 s and started again (crash recovery);
#  C. a primary and a synchronous standby behind one multi-host conninfo with
#     target_session_attrs=read-write: the primary dies mid-stream, the standby
#     is promoted, writes continue there; the totals are read from it;
#  D. three shards (pg_shards, on the servers of A and C and a third); one is
#     down for 4 s while the other two keep
#     taking their parts directly (tallyctl sink: the down lane's error, the
#     others' written counts grow, nothing of theirs spooled); totals exact
#     over the union of the shards; tallyctl where names the shard holding a key.
# About 95 s on the 2-core dev VM (more under load); initdb and DPDK start-up dominate.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faults_lib.sh"
. "$(dirname "$0")/pg_lib.sh"
pg_available || { echo "SKIP: no PostgreSQL 15 (deploy/install-deps.sh installs it)"; exit 77; }

# pg_freeze NAME STOP|CONT: signal the postmaster and every backend it forked
pg_freeze() {
  local pm; pm=$(pg_pid "$1")
  kill -"$2" $(pgrep -P "$pm") "$pm"
}

# pg_fresh NAME: empty the sink's tables between parts
pg_fresh() {
  pg_psql "$1" "SET client_min_messages = warning; DROP TABLE IF EXISTS tally_counts, tally_batches"
}

# wait_gen: the generator sent everything and tallyd has stored all of it
wait_gen() {
  for _ in $(seq 600); do grep -q '^datagrams_sent' "$work/gen.txt" && break; sleep 0.1; done
  grep -q '^datagrams_sent' "$work/gen.txt" || fail "the generator did not finish"
  sleep 1 # the last datagrams leave the memif ring
  wait_stored "$1"
}

# sink_snap FILE: tallyctl sink (every lane at one moment) into FILE
sink_snap() { "$tallyctl" -s "$work/ctl.sock" sink --json > "$1"; }

# lane FILE NAME FIELD: one field of one lane of a sink_snap
lane() {
  python3 -c '
import json, sys
for e in json.load(open(sys.argv[1]))["endpoints"]:
    if e["name"] == sys.argv[2]: print(e[sys.argv[3]])' "$1" "$2" "$3"
}

# sink_lane NAME FIELD: one field of one lane of tallyctl sink now
sink_lane() { sink_snap "$work/sink-now.json"; lane "$work/sink-now.json" "$1" "$2"; }

# common_counters LOG: what every part must show
common_counters() {
  expect_counter "$1" sink_errors -gt 0
  expect_counter "$1" spool_appended -gt 0
  expect_counter "$1" spool_replayed -gt 0
  expect_counter "$1" breaker_opens -gt 0
  expect_counter "$1" sink_permanent_errors -eq 0
  expect_counter "$1" flush_rows_lost -eq 0
  expect_counter "$1" drop_table_full -eq 0
  expect_counter "$1" drop_duplicate -eq "$(gen_summary "$work/gen.txt" duplicates_sent)"
}

pg_opts=(--sink postgres --sink_timeout_ms 1500)

echo "== A (at $SECONDS s): the server frozen for 8 s"
pg_start a on
start_tallyd "$work/a.log" "${pg_opts[@]}" --pg_conninfo "$(pg_conninfo a)" \
  --spool_dir "$work/spool-a"
start_gen 41 40000 5000
sleep 2
pg_freeze a STOP
sleep 4
sink_snap "$work/sink-a.json"
err=$(lane "$work/sink-a.json" postgres last_error)
[[ $err == *"no answer within"* ]] || { cat "$work/sink-a.json"; fail "tallyctl sink does not say the server times out"; }
echo "ok: frozen: $err"
sleep 4
pg_freeze a CONT
wait_gen 60
stop_tallyd "$work/a.log"
cat "$work/gen.txt" "$work/a.log"
"$check" "$work/expected.tsv" --pg "$(pg_conninfo a)"
common_counters "$work/a.log"

echo "== B (at $SECONDS s): the server killed (pg_ctl -m immediate) for 4 s, then started"
pg_fresh a
start_tallyd "$work/b.log" "${pg_opts[@]}" --pg_conninfo "$(pg_conninfo a)" \
  --spool_dir "$work/spool-b"
start_gen 42 40000 5000
sleep 2
pg_stop a immediate
sleep 2
sink_snap "$work/sink-b.json"
echo "ok: down: $(lane "$work/sink-b.json" postgres last_error)"
[ "$(lane "$work/sink-b.json" postgres spooled)" -gt 0 ] || fail "nothing was spooled while the server is down"
sleep 2
pg_ctl_start a
wait_gen 60
stop_tallyd "$work/b.log"
cat "$work/b.log"
"$check" "$work/expected.tsv" --pg "$(pg_conninfo a)"
common_counters "$work/b.log"

echo "== C (at $SECONDS s): the primary dies, the standby is promoted"
pg_start c1 on
pg_start_standby c2 c1
failover="host=127.0.0.1,127.0.0.1 port=$(pg_port c1),$(pg_port c2) dbname=postgres user=postgres password=$pg_password target_session_attrs=read-write"
start_tallyd "$work/c.log" "${pg_opts[@]}" --pg_conninfo "$failover" --spool_dir "$work/spool-c"
start_gen 43 40000 5000
# The failover comes once some rows have reached the standby: 2 s on a quiet
# machine, more under ASan or load (the generator sends for 8 s).
before=0
for _ in $(seq 120); do
  before=$(pg_psql c2 "SELECT coalesce(sum(count), 0) FROM tally_counts" 2>/dev/null) || before=0
  [ "${before:-0}" -gt 0 ] && break
  sleep 0.1
done
[ "${before:-0}" -gt 0 ] || fail "nothing reached the standby within 12 s"
pg_stop c1 immediate
sleep 2
echo "ok: primary gone: $(sink_lane postgres last_error)"
pg_promote c2
wait_gen 60
stop_tallyd "$work/c.log"
cat "$work/c.log"
"$check" "$work/expected.tsv" --pg "$(pg_conninfo c2)"
echo "ok: $before events were on the standby at the failover, all of them on the promoted server now"
common_counters "$work/c.log"

echo "== D (at $SECONDS s): three shards, one down for 4 s"
# the servers of A and C serve again (initdb is slow on a loaded machine)
declare -A shard_pg=([s1]=a [s2]=c2 [s3]=d3)
pg_start d3 off
shards=""
for s in s1 s2 s3; do
  pg_fresh "${shard_pg[$s]}"
  shards+="${shards:+ | }$s $(pg_conninfo "${shard_pg[$s]}")"
done
start_tallyd "$work/d.log" "${pg_opts[@]}" --pg_shards "$shards" --spool_dir "$work/spool-d"
start_gen 44 60000 5000
sleep 2
pg_stop c2 immediate
sleep 1
sink_snap "$work/sink-d1.json"
sleep 2
sink_snap "$work/sink-d2.json"
grep -q '^datagrams_sent' "$work/gen.txt" && fail "traffic ended before the checks (machine too slow)"
err=$(lane "$work/sink-d2.json" postgres-s2 last_error)
[ -n "$err" ] || fail "tallyctl sink shows no error for the down shard s2"
echo "ok: s2 down: $err"
for s in s1 s3; do
  w0=$(lane "$work/sink-d1.json" "postgres-$s" written)
  w=$(lane "$work/sink-d2.json" "postgres-$s" written)
  [ "$w" -gt "$w0" ] || { cat "$work/sink-d2.json"; fail "shard $s took no batch while s2 was down"; }
  [ "$(lane "$work/sink-d2.json" "postgres-$s" spooled)" = 0 ] ||
    { cat "$work/sink-d2.json"; fail "shard $s spooled while s2 was down"; }
  echo "ok: $s kept writing directly while s2 was down (written $w0 -> $w, nothing spooled)"
done
[ "$(lane "$work/sink-d2.json" postgres-s2 spooled)" -gt 0 ] || fail "s2's parts were not spooled"
pg_ctl_start c2
wait_gen 60
# every key is on the shard tallyctl where names, and only there
for key in $(tail -n +2 "$work/expected.tsv" | cut -f1 | sort -u | head -n 6); do
  at=$("$tallyctl" -s "$work/ctl.sock" where "$key" --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["endpoint"])')
  for s in s1 s2 s3; do
    n=$(pg_psql "${shard_pg[$s]}" "SELECT count(*) FROM tally_counts WHERE key = '$key'")
    if [ "postgres-$s" = "$at" ]; then
      [ "$n" -gt 0 ] || fail "tallyctl where $key says $at, but $s does not hold it"
    else
      [ "$n" = 0 ] || fail "$key is on $s, but tallyctl where says $at"
    fi
  done
done
echo "ok: tallyctl where names the shard holding each of 6 keys"
stop_tallyd "$work/d.log"
cat "$work/d.log"
for s in s1 s2 s3; do
  echo "$s: $(pg_psql "${shard_pg[$s]}" "SELECT count(*) || ' rows, ' || sum(count) || ' events' FROM tally_counts")"
done
"$check" "$work/expected.tsv" --pg "$(pg_conninfo a)" --pg "$(pg_conninfo c2)" \
  --pg "$(pg_conninfo d3)"
common_counters "$work/d.log"
# a (key, window) on two shards is a difference of its own
pg_psql a "COPY (SELECT * FROM tally_counts ORDER BY key LIMIT 1) TO STDOUT" |
  pg_psql d3 "COPY tally_counts FROM STDIN"
if "$check" "$work/expected.tsv" --pg "$(pg_conninfo a)" --pg "$(pg_conninfo c2)" \
  --pg "$(pg_conninfo d3)" > "$work/twice.txt"; then
  fail "tally-check took a row stored on two shards"
fi
grep -q '^twice:' "$work/twice.txt" || { cat "$work/twice.txt"; fail "tally-check did not name the row on two shards"; }
echo "ok: tally-check: $(tail -n 1 "$work/twice.txt")"
echo "PASS pg-faults ($SECONDS s)"
