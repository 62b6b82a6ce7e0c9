#!/usr/bin/env bash
# The status page (GET /) in headless Chromium under traffic: tally-gen sends
# over memif while Chromium loads the page and saves a screenshot (kept as
# build/meson-logs/status.png); once the traffic is in, the numbers the page's
# JavaScript rendered (dumped DOM) must equal `tallyctl stats --json`.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/metrics_lib.sh"
sock=$work/memif.sock
chrome=(chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run
        --disable-background-networking --disable-component-update --disable-sync
        --disable-dev-shm-usage --user-data-dir="$work/chrome" --window-size=1280,1000)

"$tallyd" --window_ms 10000 --sqlite_path "$work/tally.db" --ctl_socket "$work/ctl.sock" \
  --stop_after_idle_ms 600000 --run_ms 240000 --dedup_capacity 1048576 --table_rows 131072 \
  --flush_interval_ms 300 --port "net_memif0,role=server,socket=$sock,socket-abstract=no" \
  -- --lcores "0@0,1@1" "${eal_test[@]}" 2> "$work/tallyd.log" &
tpid=$!; pids+=("$tpid")
wait_ready "$work/ctl.sock" "$work/tallyd.log"
url="http://127.0.0.1:$(metrics_port "$work/ctl.sock")/"

"$gen" --proto tly1 --keys 2000 --events-per-dgram 4 --count 120000 --rate 8000 \
  --dup-rate 0.05 --malformed-rate 0.01 --time-ms "$now_ms" --time-span-ms 20000 \
  --window-ms 10000 --seed 51 --linger 120 \
  --port "net_memif0,role=client,socket=$sock,socket-abstract=no" \
  --expected "$work/expected.tsv" -- -l 0 "${eal_gen[@]}" > "$work/gen.txt" &
gpid=$!; pids+=("$gpid")
for _ in $(seq 300); do
  "$tallyctl" -s "$work/ctl.sock" stats --json > "$work/s.json"
  [ "$(jfield "$work/s.json" counters rx_packets)" -gt 0 ] && break
  sleep 0.1
done

# Under traffic: the screenshot shows non-zero rates.
timeout 120 "${chrome[@]}" --virtual-time-budget=5000 --screenshot="$work/status.png" "$url" \
  > "$work/chrome.log" 2>&1 || { cat "$work/chrome.log"; fail "chromium --screenshot failed"; }
[ -s "$work/status.png" ] || fail "no screenshot"
cp "$work/status.png" "$build/meson-logs/status.png"
"$tallyctl" -s "$work/ctl.sock" stats --json > "$work/s.json"
[ "$(jfield "$work/s.json" counters rx_packets)" -lt 120000 ] ||
  echo "warning: the traffic was over before the screenshot (a slow machine): rates show 0"
echo "ok: screenshot under traffic ($(stat -c %s "$work/status.png") bytes) in $build/meson-logs/status.png"
http_get "$url" | grep -q '<title>Tally status</title>' || fail "GET / is not the status page"

# Traffic over: the counters stop moving, then the page must show them.
for _ in $(seq 600); do grep -q '^datagrams_sent' "$work/gen.txt" && break; sleep 0.1; done
sent=$(gen_summary "$work/gen.txt" datagrams_sent)
[ -n "$sent" ] || fail "tally-gen did not finish sending"
for _ in $(seq 300); do
  "$tallyctl" -s "$work/ctl.sock" stats --json > "$work/s.json"
  [ "$(jfield "$work/s.json" counters rx_packets)" = "$sent" ] && break
  sleep 0.1
done
timeout 120 "${chrome[@]}" --virtual-time-budget=3000 --dump-dom "$url" > "$work/dom.html" \
  2> "$work/chrome2.log" || { cat "$work/chrome2.log"; fail "chromium --dump-dom failed"; }
"$tallyctl" -s "$work/ctl.sock" stats --json > "$work/s.json"

# page ID: the number in the element with that id
page() { sed -n "s/.*id=\"$1\">\([0-9.]*\)<.*/\1/p" "$work/dom.html" | head -1; }
same() {
  local p; p=$(page "$1")
  [ -n "$p" ] && [ "$p" = "$2" ] || fail "page $1 = '$p', tallyctl stats --json says $2"
  echo "ok: page $1 = $p"
}
c() { jfield "$work/s.json" counters "$1"; }
same total-rx_packets "$(c rx_packets)"
same total-rx_packets "$sent"
same total-events_accepted "$(c events_accepted)"
same total-rx_bytes "$(c rx_bytes)"
same 0-rx_packets "$(jfield "$work/s.json" workers 0 counters rx_packets)"
same drop-drop_duplicate "$(c drop_duplicate)"
same drop-drop_duplicate "$(gen_summary "$work/gen.txt" duplicates_sent)"
same flush-watchdog_stalls "$(c watchdog_stalls)"
grep -q 'id="sink-state">up<' "$work/dom.html" || fail "sink state not shown as up"
grep -q 'not available' "$work/dom.html" || fail "top keys placeholder missing"

"$tallyctl" -s "$work/ctl.sock" stop > /dev/null
wait "$tpid" || { cat "$work/tallyd.log"; fail "tallyd exited with an error"; }
wait "$gpid" || { cat "$work/gen.txt"; fail "tally-gen failed"; }
"$check" "$work/expected.tsv" "$work/tally.db"
grep watchdog "$work/tallyd.log" || true
echo "PASS status-page"
