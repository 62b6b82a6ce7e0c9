#!/usr/bin/env bash
# Every tallyd, tallyctl and tally-gen example of the README runs as written: the
# capture made by tally-gen and replayed by tallyd, the memif pair, and each
# tallyctl command against the running daemon. The only changes are where
# things live: the binaries come from the build, /run/tally/ becomes a scratch
# directory (tallyd gets --ctl_socket there, tallyctl $TALLY_SOCKET), each DPDK
# process gets its own --file-prefix, and relative paths (in.pcap, tally.db)
# land in the scratch directory. The real-NIC example needs a NIC: it is only
# counted. A README example this script does not know fails the test.
. "$(dirname "$0")/lib.sh"
run=$work/run
mkdir -p "$run"
cd "$work"

# One example per line, continuation lines joined, trailing comments removed.
python3 - "$src/README.md" > "$work/examples" <<'PY'
import re, sys
lines, cur = [], ""
for raw in open(sys.argv[1]):
    if not raw.startswith("    ") and not cur:
        continue
    line = raw.rstrip("\n")[4:] if raw.startswith("    ") else raw.rstrip("\n")
    cur += line.strip() if cur else line
    if cur.endswith("\\"):
        cur = cur[:-1].rstrip() + " "
        continue
    if re.match(r"(tallyd|tallyctl|tally-gen) ", cur):
        lines.append(re.sub(r"\s+#.*$", "", cur))
    cur = ""
print("\n".join(lines))
PY
[ -s "$work/examples" ] || fail "no examples found in README.md"
echo "README examples:"; sed 's/^/  /' "$work/examples"

n=0
# adapt LINE: the example with the paths and prefixes of this run
adapt() {
  local l=$1
  n=$((n + 1))
  l=${l//\/run\/tally\//$run/}
  l=${l//--file-prefix gen/--file-prefix readme-$$-gen}
  case "$l" in
    "tallyd "*)
      l="$tallyd --ctl_socket=$run/tallyd.sock ${l#tallyd }"
      [[ $l == *--file-prefix* ]] || l="$l --file-prefix readme-$$-$n" ;;
    "tally-gen "*) l="$gen ${l#tally-gen }" ;;
    "tallyctl "*) l="$tallyctl ${l#tallyctl }" ;;
  esac
  printf '%s' "$l"
}
export TALLY_SOCKET=$run/tallyd.sock
ran=0 skipped=0 daemon="" genpid=""

wait_ready() {
  for _ in $(seq 300); do [ -S "$run/tallyd.sock" ] && return 0; sleep 0.1; done
  cat "$work/daemon.log"; fail "tallyd did not become ready"
}
wait_traffic() {
  for _ in $(seq 200); do
    "$tallyctl" stats 2>/dev/null | awk '$1 == "rx_packets" && $2 > 0 { ok = 1 } END { exit !ok }' && return 0
    sleep 0.1
  done
  fail "no traffic reached the daemon from the memif example"
}
# Examples after the memif daemon stopped (tallyctl rules ..., further down the
# README) talk to a second daemon, on net_null, started once and stopped at the end.
stopped=0 daemon2=""
ensure_daemon() {
  [ "$stopped" = 1 ] && [ -z "$daemon2" ] || return 0
  $tallyd --ctl_socket="$run/tallyd.sock" --port net_null0 \
    -- -l 0-1 "${eal_base[@]}" --file-prefix "readme-$$-null" > "$work/daemon2.log" 2>&1 &
  daemon2=$!; pids+=("$daemon2")
  for _ in $(seq 300); do [ -S "$run/tallyd.sock" ] && return 0; sleep 0.1; done
  cat "$work/daemon2.log"; fail "the second tallyd did not become ready"
}
# The generator has sent everything (--duration) and lingers: rx_packets stands.
wait_gen_done() {
  local last=-1 now
  for _ in $(seq 80); do
    now=$("$tallyctl" stats | awk '$1 == "rx_packets" { print $2 }')
    [ "$now" = "$last" ] && return 0
    last=$now; sleep 1
  done
  fail "the memif example's generator never stopped sending"
}

while IFS= read -r ex; do
  cmd=$(adapt "$ex")
  case "$ex" in
    *" [-"*|*" [FILE]"*|*" KEY"|*" KEY "*)
      echo "skip (usage synopsis): $ex"; continue ;;
    *0000:*|*/etc/tally/*)
      echo "skip (needs a NIC): $ex"; skipped=$((skipped + 1)); continue ;;
    "tally-gen --pcap"*)
      eval "timeout 60 $cmd" > "$work/gen-pcap.txt" || fail "example failed: $ex"
      [ -s in.pcap ] || fail "no capture written by: $ex" ;;
    "tallyd "*net_pcap*)
      eval "timeout 60 $cmd" > "$work/pcap.log" 2>&1 || { cat "$work/pcap.log"; fail "example failed: $ex"; }
      expect_counter "$work/pcap.log" rx_packets -eq "$(gen_summary "$work/gen-pcap.txt" datagrams_sent)"
      expect_counter "$work/pcap.log" flush_events -gt 0
      rm -f tally.db tally.db-* ;;
    "tallyd "*net_memif*)
      eval "$cmd" > "$work/daemon.log" 2>&1 &
      daemon=$!; pids+=("$daemon"); wait_ready ;;
    "tally-gen "*net_memif*)
      eval "$cmd" > "$work/gen-memif.txt" 2>&1 &
      genpid=$!; pids+=("$genpid"); wait_traffic ;;
    "tallyctl stats --watch"*)
      [ -n "$daemon" ] || fail "no running daemon for: $ex"
      rc=0; eval "timeout 3 $cmd" > "$work/ctl.out" 2>&1 || rc=$?
      [ $rc = 124 ] || { cat "$work/ctl.out"; fail "example did not keep watching: $ex"; }
      grep -q rx_packets "$work/ctl.out" || fail "no counters from: $ex" ;;
    "tallyctl "*)
      [ -n "$daemon" ] || fail "no running daemon for: $ex"
      ensure_daemon
      # Stop only once the generator lingers: a memif peer that loses its
      # receiver while sending gives up with an error, as it should.
      [[ $ex != "tallyctl stop"* ]] || wait_gen_done
      eval "timeout 60 $cmd" > "$work/ctl.out" 2>&1 || { cat "$work/ctl.out"; fail "example failed: $ex"; }
      [[ $ex != "tallyctl stop"* ]] || { stopped=1; wait "$daemon" || true; }
      [ -s "$work/ctl.out" ] || [[ $ex == "tallyctl stop"* || $ex == "tallyctl flush"* ]] ||
        fail "no output from: $ex" ;;
    *) fail "README example this test does not know how to run: $ex" ;;
  esac
  echo "ok: $ex"; ran=$((ran + 1))
done < "$work/examples"

[ -n "$daemon" ] || fail "the README has no memif daemon example"
wait "$daemon" || { cat "$work/daemon.log"; fail "tallyd (memif example) failed"; }
if [ -n "$daemon2" ]; then
  "$tallyctl" stop > /dev/null; wait "$daemon2" || { cat "$work/daemon2.log"; fail "second tallyd failed"; }
fi
[ -z "$genpid" ] || wait "$genpid" || { cat "$work/gen-memif.txt"; fail "tally-gen (memif example) failed"; }
expect_counter "$work/daemon.log" rx_packets -gt 0
expect_counter "$work/daemon.log" sink_errors -eq 0
echo "PASS readme-examples: $ran ran as written, $skipped need a NIC"
