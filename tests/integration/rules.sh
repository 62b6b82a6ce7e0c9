#!/usr/bin/env bash
# Rules and live config under traffic: tally-gen (memif) sends TLY1 to tallyd
# with a rules file that drops the keys ending in 3 and renames those ending
# in 7 (tally.NNN7 -> r.NNN7, a capture group). While traffic flows, the rules
# are reloaded 100 times, alternating two files that decide the same way, a
# bad file is refused with Hyperscan's message (the old rules stay), lateness_ms
# and flush_interval_ms are set live, window_ms is refused ("needs a restart"),
# and a SIGHUP re-reads the config file. The totals must then be exactly the
# generator's, less the dropped family and with the renamed keys.
. "$(dirname "$0")/lib.sh"
sock=$work/memif.sock
ctl=("$tallyctl" -s "$work/ctl.sock")
cat > "$work/a.rules" <<'R'
# drop one family, rename another with a capture group, keep the rest
drop /^tally\.\d*3$/
rename /^tally\.(\d*7)$/ r.$1
keep /.*/
R
cat > "$work/b.rules" <<'R'
keep /^tally\.\d*[0124-689]$/
rename /^tally\.(\d+7)$/ r.$1
drop /3$/
R
printf 'drop /a(b/\n' > "$work/bad.rules"
cat > "$work/tally.conf" <<C
flush_interval_ms = 300
rules_file = $work/a.rules
C

"$tallyd" -c "$work/tally.conf" --window_ms 10000 --sqlite_path "$work/tally.db" \
  --ctl_socket "$work/ctl.sock" --stop_after_idle_ms 10000 --run_ms 120000 \
  --dedup_capacity 1048576 --table_rows 131072 \
  --port "net_memif0,role=server,socket=$sock,socket-abstract=no" \
  -- --lcores "0@0,1@1" "${eal_test[@]}" 2> "$work/tallyd.log" &
tpid=$!; pids+=("$tpid")
for _ in $(seq 300); do [ -S "$work/ctl.sock" ] && break; sleep 0.1; done
[ -S "$work/ctl.sock" ] || { cat "$work/tallyd.log"; fail "tallyd did not become ready"; }

"$gen" --proto tly1 --keys 5000 --events-per-dgram 4 --count 240000 --rate 40000 \
  --dup-rate 0.05 --flows 64 --linger 30 \
  --time-ms "$now_ms" --time-span-ms 20000 --window-ms 10000 --seed 33 \
  --port "net_memif0,role=client,socket=$sock,socket-abstract=no" --expected "$work/expected.tsv" \
  -- -l 0 "${eal_gen[@]}" > "$work/gen.txt" &
gpid=$!; pids+=("$gpid")

rx() { "${ctl[@]}" stats --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["counters"]["rx_packets"])'; }
for _ in $(seq 100); do [ "$(rx)" -gt 0 ] && break; sleep 0.05; done
rx0=$(rx)
[ "$rx0" -gt 0 ] || fail "no traffic arrived"
for i in $(seq 100); do
  f=$work/a.rules; [ $((i % 2)) = 0 ] && f=$work/b.rules
  "${ctl[@]}" rules reload "$f" > /dev/null || fail "rules reload $i ($f) failed"
done
rx1=$(rx)
echo "ok: 100 reloads while rx_packets went $rx0 -> $rx1"
[ "$rx1" -gt "$rx0" ] || fail "no traffic during the reloads"
out=$("${ctl[@]}" rules reload "$work/bad.rules" 2>&1) && fail "a bad rules file was taken"
echo "$out" | grep -q "bad.rules:1: /a(b/: Hyperscan: Missing close parenthesis" ||
  fail "bad rules: not Hyperscan's message: $out"
"${ctl[@]}" rules show | grep -q "rules file: $work/b.rules" || fail "the old rules did not stay"
"${ctl[@]}" rules test tally.00000017 | grep -q "r.00000017" || fail "rules test: no rename"
"${ctl[@]}" rules test tally.00000013 | grep -q "(dropped)" || fail "rules test: no drop"
"${ctl[@]}" config set lateness_ms 7200000 > /dev/null || fail "config set lateness_ms"
"${ctl[@]}" config set flush_interval_ms 200 > /dev/null || fail "config set flush_interval_ms"
out=$("${ctl[@]}" config set window_ms 5000 2>&1) && fail "window_ms was set at run time"
echo "$out" | grep -q "window_ms needs a restart" || fail "window_ms refusal: $out"
# SIGHUP: the file's flush interval and rules file come back; rx_desc needs a restart
printf 'flush_interval_ms = 250\nrules_file = %s\nrx_desc = 2048\n' "$work/a.rules" \
  > "$work/tally.conf"
kill -HUP "$tpid"
for _ in $(seq 50); do
  grep -q "SIGHUP: configuration re-read" "$work/tallyd.log" && break; sleep 0.1
done
"${ctl[@]}" config flush_interval_ms | grep -q 250 || fail "SIGHUP did not apply flush_interval_ms"
"${ctl[@]}" rules show > "$work/show.txt"
cat "$work/show.txt"

wait "$tpid" || { cat "$work/tallyd.log"; fail "tallyd exited with an error"; }
wait "$gpid" || { cat "$work/gen.txt"; fail "tally-gen failed"; }
cat "$work/gen.txt"
grep -E '^(config|tallyd: rules)' "$work/tallyd.log" | sed 's/-> .*/-> .../' | sort | uniq -c

[ "$(gen_summary "$work/gen.txt" frames_tx_failed)" = 0 ] || fail "generator could not send everything"
grep -q "config: lateness_ms: 3600000 -> 7200000" "$work/tallyd.log" || fail "lateness_ms change not logged"
grep -q "config: flush_interval_ms: 300 -> 200" "$work/tallyd.log" || fail "flush_interval_ms change not logged"
grep -q "config: flush_interval_ms: 200 -> 250" "$work/tallyd.log" || fail "SIGHUP change not logged"
grep -q "config: rx_desc changed in the file but needs a restart" "$work/tallyd.log" ||
  fail "SIGHUP did not name rx_desc as needing a restart"
# The expected totals less the keys ending in 3, with tally.N7 renamed r.N7.
awk -F'\t' 'BEGIN { OFS = "\t" } NR == 1 { print; next } $1 ~ /3$/ { next }
  $1 ~ /7$/ { sub(/^tally\./, "r.", $1) } { print }' "$work/expected.tsv" > "$work/ruled.tsv"
dropped=$(awk -F'\t' 'NR > 1 && $1 ~ /3$/ { n += $4 } END { print n + 0 }' "$work/expected.tsv")
[ "$dropped" -gt 0 ] || fail "the dropped family had no events: the test proves nothing"
"$check" "$work/ruled.tsv" "$work/tally.db"
# rules run before dedup: the duplicates of the family are dropped by the rule too
expect_counter "$work/tallyd.log" rules_dropped -ge "$dropped"
expect_counter "$work/tallyd.log" rules_reloads -ge 101
expect_counter "$work/tallyd.log" rules_reload_errors -eq 1
expect_counter "$work/tallyd.log" rules_renamed -gt 0
expect_counter "$work/tallyd.log" sink_errors -eq 0
echo "PASS rules and live config under traffic"
