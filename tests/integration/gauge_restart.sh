#!/usr/bin/env bash
# Relative gauges survive a restart: a first tallyd stores q=10 (an absolute
# line, then +5 and -3: 12); a second tallyd on the same sink gets only
# relative lines in a later window and must continue from 12, not from 0.
# $1: the sink (sqlite, postgres, redis, redis-cluster; default sqlite).
. "$(dirname "$0")/lib.sh"
here=$(dirname "$0")
py=/usr/bin/python3
sink=${1:-sqlite}
case $sink in
  sqlite) args=(--sqlite_path "$work/tally.db") ;;
  postgres)
    . "$here/pg_lib.sh"
    pg_available || { echo "SKIP: no PostgreSQL 15"; exit 77; }
    pg_start pg off
    args=(--sink postgres --pg_conninfo "$(pg_conninfo pg)") ;;
  redis)
    . "$here/redis_lib.sh"
    p=$(free_port); redis_start "$work/redis" "$p"
    args=(--sink redis --redis_addr "127.0.0.1:$p") ;;
  redis-cluster)
    . "$here/redis_lib.sh"
    redis_cluster_start
    redis_cluster_wait_synced
    args=(--sink redis-cluster --redis_cluster_nodes "$cluster_seeds") ;;
  *) fail "unknown sink $sink" ;;
esac
t=$(( $(date +%s) / 60 * 60 - 600 )) # a minute boundary ten minutes ago: two windows of 60 s
"$py" "$here/statsd_clients.py" write-pcap "$work/a.pcap" 8125 \
  "q:10|g|T$t" "q:+5|g|T$t" "q:-3|g|T$t" "other:1|c|T$t" "old:4|g|T$((t - 60))" "old:7|g|T$t"
"$py" "$here/statsd_clients.py" write-pcap "$work/b.pcap" 8125 \
  "q:+1|g|T$((t + 60))" "q:+0.5|g|T$((t + 60))" "old:+1|g|T$((t + 60))"
run() {
  "$tallyd" --window_ms 60000 "${args[@]}" --ctl_socket "$work/ctl.sock" \
    --stop_after_idle_ms 1000 --run_ms 60000 --table_rows 4096 --flush_interval_ms 200 \
    --lateness_ms 0 --future_ms 0 --port "net_pcap0,rx_pcap=$1" \
    -- -l 0-1 "${eal_test[@]}" 2> "$work/tallyd.log" || { cat "$work/tallyd.log"; fail "tallyd exited $?"; }
  grep "gauge state" "$work/tallyd.log"
}
run "$work/a.pcap"
grep -q "gauge state: 0 gauges known after sink" "$work/tallyd.log" || fail "the first run restored gauges from an empty sink"
run "$work/b.pcap"
grep -q "gauge state: 2 gauges known after sink" "$work/tallyd.log" || fail "the second run did not restore q and old"
# q|g and old|g rows: window offset, count, sum, min, max, last
rows() {
  case $sink in
    sqlite) sqlite3 "$work/tally.db" "SELECT key, window_start_ms - ${t}000, count, sum, min, max, last FROM tally_counts WHERE key LIKE '%|g' ORDER BY 1, 2" ;;
    postgres) pg_psql pg "SELECT key, window_start_ms - ${t}000, count, sum, min, max, last FROM tally_counts WHERE key LIKE '%|g' ORDER BY 1, 2" ;;
    redis*)
      for k in old q; do for w in -60 0 60; do
        local ks="tally:c:60000:$(( (t + w) * 1000 )):$k|g" v
        if [ "$sink" = redis ]; then v=$(redis-cli -p "$p" --raw HMGET "$ks" count sum min max last | tr '\n' '|')
        else v=$(redis-cli -c -p "${cluster_ports[0]}" --raw HMGET "$ks" count sum min max last | tr '\n' '|'); fi
        [ "$v" = "|||||" ] || echo "$k|g|$(( w * 1000 ))|${v%|}"
      done; done ;;
  esac
}
got=$(rows | python3 -c '
import sys
for l in sys.stdin:
    f = l.strip().split("|")
    print("|".join(f[:4] + ["%g" % float(x) for x in f[4:]]))' | tr '\n' ' ')
# q: 10 15 12, then 13 13.5; old: 4, then 7, then 8
want="old|g|-60000|1|4|4|4|4 old|g|0|1|7|7|7|7 old|g|60000|1|8|8|8|8 q|g|0|3|37|10|15|12 q|g|60000|2|26.5|13|13.5|13.5 "
[ "$got" = "$want" ] || fail "gauge rows ($sink): got '$got', want '$want'"
echo "PASS gauge_restart $sink (rows: $got)"
