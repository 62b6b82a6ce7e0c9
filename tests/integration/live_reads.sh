#!/usr/bin/env bash
# tallyctl top and get, the appliance's read path: after a replay and a flush,
# `top` lists exactly the heaviest keys of the open windows (by count, by sum,
# with a prefix), as computed from the generator's expected totals, and `get`
# shows a key's open windows and its stored rows, equal to the expected ones.
. "$(dirname "$0")/lib.sh"

"$gen" --proto tly1 --keys 500 --dist zipf --events-per-dgram 4 --count 20000 \
  --time-ms "$now_ms" --time-span-ms 9000 --window-ms 10000 --seed 61 \
  --pcap "$work/t.pcap" --expected "$work/expected.tsv" > "$work/gen.txt"
"$tallyd" --window_ms 10000 --sqlite_path "$work/tally.db" --ctl_socket "$work/ctl.sock" \
  --stop_after_idle_ms 600000 --run_ms 120000 --port "net_pcap0,rx_pcap=$work/t.pcap" \
  -- -l 0-1 "${eal_test[@]}" 2> "$work/tallyd.log" &
tpid=$!; pids+=("$tpid")
ctl=("$tallyctl" -s "$work/ctl.sock")
for _ in $(seq 300); do [ -S "$work/ctl.sock" ] && break; sleep 0.1; done
for _ in $(seq 300); do
  "${ctl[@]}" stats | awk '$1 == "rx_packets" && $2 == 20000 { ok = 1 } END { exit !ok }' && break
  sleep 0.1
done
"${ctl[@]}" flush > /dev/null
for _ in $(seq 100); do
  "${ctl[@]}" stats --json | python3 -c 'import json,sys; c=json.load(sys.stdin)["counters"]; sys.exit(c["flush_events"] != c["events_accepted"])' && break
  sleep 0.1
done
"${ctl[@]}" top -n 5
"${ctl[@]}" top -n 5 --json > "$work/top-count.json"
"${ctl[@]}" top -n 3 --by sum --prefix tally.0000001 --json > "$work/top-sum.json"
"${ctl[@]}" get tally.00000000 --json > "$work/get.json"
"${ctl[@]}" top -n 0 > /dev/null 2>&1 && fail "top -n 0 was accepted"
"${ctl[@]}" stop > /dev/null
wait "$tpid" || { cat "$work/tallyd.log"; fail "tallyd failed"; }

python3 - "$work" <<'PY' || fail "top/get differ from the expected totals"
import collections, csv, json, sys
w = sys.argv[1]
rows = list(csv.DictReader(open(w + "/expected.tsv"), delimiter="\t"))
cnt, sm = collections.Counter(), collections.Counter()
for r in rows:
    cnt[r["key"]] += int(r["count"]); sm[r["key"]] += float(r["sum"])
def top(d, keys, n):
    return sorted(keys, key=lambda k: (-d[k], k))[:n]
got = [k["key"] for k in json.load(open(w + "/top-count.json"))["keys"]]
want = top(cnt, cnt, 5)
assert got == want, ("top by count", got, want)
for k in json.load(open(w + "/top-count.json"))["keys"]:
    assert k["count"] == cnt[k["key"]], k
pre = [k for k in cnt if k.startswith("tally.0000001")]
got = [k["key"] for k in json.load(open(w + "/top-sum.json"))["keys"]]
assert got == top(sm, pre, 3), ("top by sum with prefix", got, top(sm, pre, 3))
g = json.load(open(w + "/get.json"))
exp = sorted((int(r["window_start_ms"]), int(r["count"]), float(r["sum"]))
             for r in rows if r["key"] == "tally.00000000")
live = sorted((r["window_start_ms"], r["count"], r["sum"]) for r in g["open_windows"])
stored = sorted((r["window_start_ms"], r["count"], r["sum"]) for r in g["stored"])
assert live == exp, ("get: open windows", live, exp)
assert stored == exp, ("get: stored", stored, exp)
print("ok: top (count, sum, prefix) and get match the expected totals")
PY
echo "PASS live-reads"
