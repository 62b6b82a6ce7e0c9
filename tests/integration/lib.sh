# Shared helpers for the integration tests: paths, a scratch dir removed on exit,
# the tallyd EAL defaults for tests (no hugepages, no PCI, private memory), and
# assertions on tallyd's exit report ("name value  help" lines).
set -euo pipefail
build=${TALLY_BUILD:?TALLY_BUILD is set by meson}
src=${TALLY_SRC:?TALLY_SRC is set by meson}
gen=$build/perf/tally-gen
tallyd_bin=$build/ctrlplane/tallyd
tallyctl=$build/ctrlplane/tallyctl
check=$src/perf/tally-check
work=$(mktemp -d /tmp/tally-it.XXXXXX)
pids=()
on_exit=() # commands a test needs run before the scratch dir goes (umount...)
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for c in "${on_exit[@]}"; do eval "$c" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
# tallyd's relative defaults (tally.db, tally-spool) land in this test's own dir.
cd "$work"
# Tests' tallyd serves metrics on a free port, not the default 9125, so tests
# run side by side (and beside a real tallyd) do not collide; a test's own
# --metrics_addr comes later and wins. `tallyctl status` shows the port.
tallyd=$work/tallyd
printf '#!/bin/sh\nexec "%s" --metrics_addr 127.0.0.1:0 "$@"\n' "$tallyd_bin" > "$tallyd"
chmod +x "$tallyd"
# --no-huge cannot go with --in-memory: each DPDK process gets its own file prefix.
eal_base=(--no-huge --no-pci -m 512 --log-level='*:warning')
eal_test=("${eal_base[@]}" --file-prefix "tally-it-$$")
eal_gen=("${eal_base[@]}" --file-prefix "tally-gen-$$")
now_ms=$(( $(date +%s) * 1000 ))

fail() { echo "FAIL: $*" >&2; exit 1; }

# counter LOG NAME: the value of a counter in tallyd's exit report
counter() { awk -v n="$2" '$1 == n { print $2; exit }' "$1"; }

# expect_counter LOG NAME OP VALUE, e.g. expect_counter log drop_duplicate -gt 0
expect_counter() {
  local v; v=$(counter "$1" "$2")
  [ -n "$v" ] || fail "counter $2 missing from $1"
  [ "$v" "$3" "$4" ] || fail "counter $2 is $v, expected $3 $4"
  echo "ok: $2 = $v ($3 $4)"
}

# gen_summary FILE NAME: a value from tally-gen's printed summary
gen_summary() { awk -v n="$2" '$1 == n { print $2; exit }' "$1"; }

# veth_pair A P NET: namespaces A (tallyd's, NET.1 on xa) and P (the producer's,
# NET.2 on xp) joined by a veth pair, removed on exit; the producer's kernel
# finishes UDP checksums itself, as a NIC would (README)
veth_pair() {
  on_exit+=("ip netns del $1" "ip netns del $2")
  ip netns add "$1"
  ip netns add "$2"
  ip link add xa netns "$1" type veth peer name xp netns "$2"
  ip -n "$1" addr add "$3.1/24" dev xa
  ip -n "$2" addr add "$3.2/24" dev xp
  ip -n "$1" link set xa up; ip -n "$1" link set lo up
  ip -n "$2" link set xp up; ip -n "$2" link set lo up
  ip netns exec "$2" ethtool -K xp tx off > /dev/null
}
