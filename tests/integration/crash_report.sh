#!/usr/bin/env bash
# A tallyd that crashes says so on stderr (the journal): the signal, the thread
# and its stack, then dies of the signal as before (exit status 128 + signal,
# a core where the system keeps them). SIGSEGV sent from outside lands on the
# main thread: its stack must name tallyd's control loop.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/faults_lib.sh"

start_tallyd "$work/tallyd.log" --sqlite_path "$work/tally.db"
kill -SEGV "$tpid"
rc=0; wait "$tpid" || rc=$?
grep -v '^EAL\|^TELEMETRY' "$work/tallyd.log" | tail -n 30
[ "$rc" -eq $((128 + 11)) ] || fail "tallyd exited $rc after SIGSEGV (expected 139)"
grep -q '^tallyd: fatal signal 11 in thread ' "$work/tallyd.log" ||
  fail "no 'fatal signal' line on stderr"
grep -q 'tally_loop_once\|epoll_wait' "$work/tallyd.log" ||
  fail "the stack does not show where the main thread was"
echo "PASS crash-report"
