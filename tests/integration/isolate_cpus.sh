#!/usr/bin/env bash
# deploy/tally-isolate-cpus (run by perf/bench.py around its 90% run, and by
# operators who cannot reboot with isolcpus=): a thread allowed on the worker
# core loses it and gets it back on --restore; a thread allowed only there
# stays; the unbound workqueues follow when the kernel lets them; bad input is
# refused by name and changes nothing; --pause-damon turns a running kdamond
# off and --restore back on (on a machine that runs one).
. "$(dirname "$0")/lib.sh"
tool=$src/deploy/tally-isolate-cpus
state=$work/iso.json
[ "$(nproc --all)" -ge 2 ] || { echo "SKIP: needs 2 CPUs"; exit 77; }
last=$(( $(nproc --all) - 1 ))
# affinity PID: its CPUs, one list form whatever taskset prints ("0,1" or "0-1")
affinity() { python3 -c 'import os, sys; print(*sorted(os.sched_getaffinity(int(sys.argv[1]))))' "$1"; }
all=$(seq -s ' ' 0 "$last")

taskset -c "0-$last" sleep 120 & both=$!; pids+=("$both")
taskset -c "$last" sleep 120 & only=$!; pids+=("$only")
wq=/sys/devices/virtual/workqueue/cpumask
wq_before=$(cat "$wq" 2>/dev/null || echo none)

"$tool" --cpus "$last" --state "$state" > "$work/iso.txt" ||
  { on_exit+=("'$tool' --restore --state '$state'"); fail "isolate exited $?"; }
on_exit+=("[ -e '$state' ] && '$tool' --restore --state '$state'")
cat "$work/iso.txt"
grep -q "^threads: [1-9][0-9]* moved off CPUs \[$last\]" "$work/iso.txt" || fail "no thread moved"
[ "$(affinity "$both")" = "$(seq -s ' ' 0 $((last - 1)))" ] ||
  fail "a thread allowed on CPU $last still is: $(affinity "$both")"
[ "$(affinity "$only")" = "$last" ] || fail "a thread allowed only CPU $last was moved"
[ "$(affinity $$)" != "$all" ] || fail "the test's own shell kept CPU $last"
if grep -q "^unbound workqueues: .* -> " "$work/iso.txt"; then
  [ "$(cat "$wq")" != "$wq_before" ] || fail "workqueue mask said moved but reads $wq_before"
fi

set +e
"$tool" --cpus "$last" --state "$state" 2> "$work/twice.err"; rc=$?
set -e
[ "$rc" != 0 ] && grep -q "run --restore first" "$work/twice.err" ||
  fail "a second isolate over a saved state was not refused (rc $rc)"

"$tool" --restore --state "$state" | tee "$work/restore.txt"
[ "$(affinity "$both")" = "$all" ] || fail "not restored: $(affinity "$both")"
[ "$(cat "$wq" 2>/dev/null || echo none)" = "$wq_before" ] || fail "workqueue mask not restored"
[ ! -e "$state" ] || fail "the state file outlived --restore"
echo "ok: isolated CPU $last and put it back"

kd=/sys/kernel/mm/damon/admin/kdamonds/0/state
if [ -r "$kd" ] && [ "$(cat "$kd")" = on ]; then
  "$tool" --cpus "$last" --pause-damon --state "$state" | tee "$work/damon.txt"
  [ "$(cat "$kd")" = off ] || fail "kdamond 0 still $(cat "$kd") after --pause-damon"
  grep -q "^DAMON: [1-9][0-9]* kdamond(s) paused" "$work/damon.txt" || fail "the pause is not reported"
  "$tool" --restore --state "$state"
  [ "$(cat "$kd")" = on ] || fail "kdamond 0 is $(cat "$kd") after --restore"
  echo "ok: --pause-damon paused kdamond 0 and --restore turned it back on"
else
  echo "no running kdamond here: --pause-damon not tried"
fi

bad() { # bad ARGS... -- MESSAGE
  local args=() msg rc
  while [ "$1" != -- ]; do args+=("$1"); shift; done
  msg=$2
  set +e
  "$tool" "${args[@]}" > /dev/null 2> "$work/bad.err"; rc=$?
  set -e
  [ "$rc" != 0 ] && grep -q "$msg" "$work/bad.err" ||
    fail "$tool ${args[*]}: rc $rc, said: $(cat "$work/bad.err")"
  [ ! -e "$state" ] || fail "$tool ${args[*]} left a state file"
  echo "ok: refused ${args[*]}: $(tail -1 "$work/bad.err")"
}
bad --cpus x --state "$state" -- "not a CPU list"
bad --cpus "0-$last" --state "$state" -- "must leave at least one"
bad --restore --state "$state" -- "nothing to restore"
[ "$(affinity "$both")" = "$all" ] || fail "a refused call changed an affinity"
