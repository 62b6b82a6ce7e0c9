#!/usr/bin/env bash
# tallyctl's contract with scripts and operators (issue 16):
#  1. every command has --help and help COMMAND (usage, options, exit codes);
#     exit codes: 2 bad usage (nothing sent), 3 no daemon (missing socket,
#     connection refused, no permission on the socket), 4 no answer in time
#     (a fake server that never answers; a drain that never completes), 1 an
#     error from tallyd, 5 refused by tallyd.
#  2. socket permissions: the default mode is 0600; with ctl_socket_mode 0660,
#     ctl_socket_group and ctl_ro_group, a user of the read-only group (created
#     for the test, removed after) may run every read-only command and gets
#     "permission denied: COMMAND changes state" (exit 5) for the others; a user
#     outside the group cannot connect (exit 3) and, with the socket opened up
#     to everyone, is refused every command (exit 5); ctl_denied counts them.
#  3. logging: log_level filters (warning hides the start-up notice; set back
#     to info at run time); config changes are all logged; a call site that
#     repeats (refused requests) is cut after 10 messages in 10 s, and what was
#     cut is reported in "suppressed K messages" lines.
#  4. the journal target (a fake journal socket in a private /run), and 5. the
#     syslog target (a fake /dev/log in a private /dev).
. "$(dirname "$0")/lib.sh"

# expect_rc CODE CMD...: run CMD, its exit code must be CODE
expect_rc() {
  local want=$1 rc=0; shift
  "$@" > "$work/out" 2> "$work/err" || rc=$?
  [ "$rc" = "$want" ] || { cat "$work/out" "$work/err"; fail "$* exited $rc, expected $want"; }
}

echo "== 1. help and exit codes"
cmds="stats status config rules sink spool archive where top get acl ratelimit flush drain resume stop help"
for c in $cmds; do
  expect_rc 0 "$tallyctl" "$c" --help
  grep -q "^usage: tallyctl \[-s SOCKET\] $c" "$work/out" || fail "$c --help has no usage line"
  grep -q "^exit codes:" "$work/out" || fail "$c --help lists no exit codes"
  grep -q "^  3  cannot reach tallyd" "$work/out" || fail "$c --help: exit code 3 missing"
  expect_rc 0 "$tallyctl" help "$c"
  expect_rc 0 "$tallyctl" -s /nonexistent "$c" -h
done
expect_rc 0 "$tallyctl" --help
for c in $cmds; do grep -q "^  $c " "$work/out" || fail "tallyctl --help does not list $c"; done
echo "ok: --help and help COMMAND for every command"
expect_rc 2 "$tallyctl"
expect_rc 2 "$tallyctl" nosuchcommand
expect_rc 2 "$tallyctl" help nosuchcommand
expect_rc 2 "$tallyctl" stats --bogus
expect_rc 2 "$tallyctl" where
expect_rc 2 "$tallyctl" get a b
expect_rc 2 "$tallyctl" config set window_ms
expect_rc 2 "$tallyctl" rules frobnicate
expect_rc 2 "$tallyctl" top -n 0
expect_rc 2 "$tallyctl" top --by max
expect_rc 2 "$tallyctl" flush now
expect_rc 2 "$tallyctl" drain --timeout x
expect_rc 2 "$tallyctl" status --watch 1
expect_rc 2 "$tallyctl" -s
echo "ok: bad usage exits 2"
for c in "stats" "status" "config" "flush" "drain" "stop" "where k" "spool replay"; do
  # shellcheck disable=SC2086
  expect_rc 3 "$tallyctl" -s "$work/none.sock" $c
  grep -q "cannot reach tallyd" "$work/err" || fail "$c: unclear error: $(cat "$work/err")"
done
touch "$work/plain"  # not a socket: refused
expect_rc 3 "$tallyctl" -s "$work/plain" stats
echo "ok: no daemon exits 3"
# fake servers: one that never answers, one whose drain never completes
python3 - "$work" <<'PY' &
import os, socket, sys, threading, time
w = sys.argv[1]
def serve(path, answer):
    s = socket.socket(socket.AF_UNIX); s.bind(path + ".new"); s.listen(8)
    os.rename(path + ".new", path)
    held = []
    while True:
        c, _ = s.accept()
        if answer is None:
            held.append(c)  # never answers
        else:
            c.recv(4096); c.sendall(answer); c.close()
threading.Thread(target=serve, args=(w + "/mute.sock", None), daemon=True).start()
threading.Thread(target=serve, args=(w + "/slow.sock",
    b'{"state":"draining","elapsed_ms":5,"flushed":{},"committed":{}}\n'), daemon=True).start()
threading.Thread(target=serve, args=(w + "/err.sock", b'{"error":"boom"}\n'), daemon=True).start()
time.sleep(120)
PY
pids+=($!)
for _ in $(seq 50); do [ -S "$work/err.sock" ] && break; sleep 0.1; done
expect_rc 4 "$tallyctl" -s "$work/mute.sock" stats
grep -q "no answer" "$work/err" || fail "timeout unclear: $(cat "$work/err")"
expect_rc 4 "$tallyctl" -s "$work/slow.sock" drain --timeout 1
grep -q "not complete within 1 s" "$work/err" || fail "drain timeout unclear: $(cat "$work/err")"
expect_rc 1 "$tallyctl" -s "$work/err.sock" sink
grep -q "boom" "$work/err" || fail "the daemon's error is not shown"
echo "ok: no answer exits 4, a drain not done by --timeout exits 4, an error exits 1"

echo "== 2. socket permissions, read-only group"
"$gen" --proto tly1 --keys 100 --count 200 --time-ms "$now_ms" --pcap "$work/t.pcap" \
  --expected "$work/expected.tsv" > /dev/null
g=tlyro$$; ro=tlyro$$u; other=tlyx$$u
groupadd "$g"; on_exit+=("groupdel $g")
useradd -M -N -g nogroup -G "$g" -s /usr/sbin/nologin "$ro"; on_exit=("userdel $ro" "${on_exit[@]}")
useradd -M -N -g nogroup -s /usr/sbin/nologin "$other"; on_exit=("userdel $other" "${on_exit[@]}")
chmod 0711 "$work"  # the users reach the socket, not the rest
cp "$tallyctl" "$work/tallyctl"; chmod 0755 "$work/tallyctl"
as() { local u=$1; shift; runuser -u "$u" -- "$work/tallyctl" -s "$work/ctl.sock" "$@"; }
start() {
  local db=$1; shift
  rm -f "$work/ctl.sock"
  "$tallyd" --sqlite_path "$work/$db" --ctl_socket "$work/ctl.sock" --run_ms 120000 \
    --dedup_capacity 65536 --table_rows 16384 --port "net_pcap0,rx_pcap=$work/t.pcap" "$@" \
    -- -l 0-1 "${eal_test[@]}" 2> "$work/tallyd.log" &
  tpid=$!; pids+=("$tpid")
  for _ in $(seq 300); do [ -S "$work/ctl.sock" ] && return 0; sleep 0.1; done
  cat "$work/tallyd.log"; fail "tallyd did not become ready"
}
# a group that does not exist stops tallyd at start, naming the key
if "$tallyd" --ctl_ro_group no-such-group-$$ --port=net_null0 --sqlite_path "$work/x.db" \
    --ctl_socket "$work/x.sock" -- -l 0-1 "${eal_test[@]}" > "$work/bad.log" 2>&1; then
  fail "tallyd started with an unknown ctl_ro_group"
fi
grep -q "ctl_ro_group: no group \"no-such-group-$$\"" "$work/bad.log" || { cat "$work/bad.log"; fail "unclear"; }
echo "ok: $(grep -o 'ctl_ro_group: no group.*' "$work/bad.log")"
start t1.db --log_level warning
[ "$(stat -c %a "$work/ctl.sock")" = 600 ] || fail "default socket mode is $(stat -c %a "$work/ctl.sock"), not 600"
expect_rc 3 as "$ro" stats   # cannot even connect
grep -q "Permission denied" "$work/err" || fail "unclear: $(cat "$work/err")"
echo "ok: default mode 0600: another user cannot connect (exit 3)"
# logging, part one: warning hides the start-up notice; back to info live
grep -q "worker(s) on" "$work/tallyd.log" && fail "log_level warning let the start-up notice through"
expect_rc 0 "$tallyctl" -s "$work/ctl.sock" config set log_level info
# config changes are an operator's record: never cut, however many
for i in $(seq 15); do "$tallyctl" -s "$work/ctl.sock" config set lateness_ms $((3600000 + i)) > /dev/null; done
"$tallyctl" -s "$work/ctl.sock" stop > /dev/null; wait "$tpid" || fail "tallyd exited with an error"
grep -q "^config: log_level: warning -> info" "$work/tallyd.log" || fail "log_level change not logged"
[ "$(grep -c "^config: lateness_ms: .* -> " "$work/tallyd.log")" = 15 ] || fail "config changes were cut"
grep -q "stopping: draining" "$work/tallyd.log" || fail "log_level info did not take effect"
"$check" "$work/expected.tsv" "$work/t1.db"
echo "ok: log_level filters and changes live; every config change is logged"

start t2.db --ctl_socket_mode 0660 --ctl_socket_group "$g" --ctl_ro_group "$g"
[ "$(stat -c '%a %G' "$work/ctl.sock")" = "660 $g" ] ||
  fail "socket is $(stat -c '%a %G' "$work/ctl.sock"), expected 660 $g"
for c in "stats" "stats --json" "status" "config" "config show" "config window_ms" \
         "config get window_ms" "rules show" "rules test some.key" "sink" "spool" "archive" \
         "where some.key" "top" "top -n 3 --by sum" "get some.key" "drain status"; do
  # shellcheck disable=SC2086
  expect_rc 0 as "$ro" $c
done
echo "ok: the read-only group runs every read-only command"
denied=0
for c in "flush" "stop" "drain" "resume" "spool replay" "config set lateness_ms 7200000" \
         "rules reload" "ratelimit set 5"; do
  # shellcheck disable=SC2086
  expect_rc 5 as "$ro" $c
  denied=$((denied + 1))
  w=$(echo "$c" | awk '{ print (NF > 1 && $1 != "flush") ? $1 " " $2 : $1 }')
  grep -q "permission denied: $w changes state" "$work/err" ||
    fail "$c: unclear refusal: $(cat "$work/err")"
done
echo "ok: and is refused the others: $(cat "$work/err")"
expect_rc 3 as "$other" status
echo "ok: a user outside the group cannot connect"
chmod 0666 "$work/ctl.sock"  # as if the mode were too open: tallyd still says no
expect_rc 5 as "$other" status
grep -q "permission denied: uid [0-9]* may not use" "$work/err" || fail "unclear: $(cat "$work/err")"
denied=$((denied + 1))
echo "ok: $(cat "$work/err")"
# a user hammering the socket: the refusals are logged 10 per 10 s, then counted
for _ in $(seq 15); do as "$ro" flush 2> /dev/null && fail "flush was allowed"; done
denied=$((denied + 15))
sleep 10.5  # the call site's interval ends; the control loop reports what it cut
# the refused commands changed nothing: tallyd runs, lateness_ms as it was
[ "$("$tallyctl" -s "$work/ctl.sock" config get lateness_ms | awk '{print $2}')" = 3600000 ] ||
  fail "a refused config set was applied"
expect_rc 0 "$tallyctl" -s "$work/ctl.sock" flush   # root may
[ "$("$tallyctl" -s "$work/ctl.sock" stats --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["counters"]["ctl_denied"])')" = "$denied" ] ||
  fail "ctl_denied does not count the $denied refusals"
echo "ok: ctl_denied = $denied"
"$tallyctl" -s "$work/ctl.sock" stop > /dev/null; wait "$tpid" || fail "tallyd exited with an error"
grep -E "suppressed" "$work/tallyd.log" || fail "no \"suppressed K messages\" line"
logged=$(grep -c "^tallyd: control: permission denied" "$work/tallyd.log")
cut=$(sed -n 's/^tallyd: suppressed \([0-9]*\) messages from .*ctl.c:[0-9]* .*/\1/p' "$work/tallyd.log" |
      awk '{ n += $1 } END { print n + 0 }')
[ "$logged" -le 20 ] || fail "$logged refusals logged: the rate limit did not cut"
[ $((logged + cut)) = "$denied" ] ||
  fail "$logged refusals logged + $cut suppressed != $denied refused"
echo "ok: $denied refusals: $logged logged, $cut reported as suppressed"
"$check" "$work/expected.tsv" "$work/t2.db"

echo "== 4. the journal: log_target auto with stderr connected to it"
# No journald on a test machine: a private /run (mount namespace) holds a fake
# /run/systemd/journal/socket that keeps every datagram; stderr is a file
# whose device:inode $JOURNAL_STREAM names, as systemd sets it for a service.
cat > "$work/journal.sh" <<'SH'
set -eu
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/journal
python3 - "$work/journal.txt" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/run/systemd/journal/socket")
with open(sys.argv[1], "ab", buffering=0) as f:
    while True:
        f.write(s.recv(65536) + b"\n--\n")
PY
jpid=$!
for _ in $(seq 50); do [ -S /run/systemd/journal/socket ] && break; sleep 0.1; done
exec 3>"$work/j.log"
JOURNAL_STREAM=$(stat -c '%d:%i' "$work/j.log") "$tallyd" --sqlite_path "$work/t3.db" \
  --ctl_socket "$work/j.sock" --dedup_capacity 65536 --table_rows 16384 --stop_after_idle_ms 1000 \
  --run_ms 60000 --port "net_pcap0,rx_pcap=$work/t.pcap" -- -l 0-1 $eal 2>&3 || rc=$?
kill $jpid
exit ${rc:-0}
SH
work=$work tallyd=$tallyd eal="${eal_test[*]}" unshare -m --propagation private bash "$work/journal.sh" ||
  { cat "$work/j.log"; fail "tallyd under the fake journal exited with an error"; }
grep -q "^MESSAGE=stopping: draining workers and flushing$" "$work/journal.txt" ||
  { cat "$work/journal.txt"; fail "the stop notice did not reach the journal"; }
grep -A4 "^MESSAGE=stopping: draining" "$work/journal.txt" | grep -q "^PRIORITY=5$" ||
  fail "the journal entry has no PRIORITY=5 (notice)"
grep -q "^SYSLOG_IDENTIFIER=tallyd$" "$work/journal.txt" || fail "no SYSLOG_IDENTIFIER"
grep -q "^CODE_FILE=.*tallyd.c$" "$work/journal.txt" || fail "no CODE_FILE"
grep -q "stopping: draining" "$work/j.log" && fail "the notice went to stderr as well"
expect_counter "$work/j.log" events_accepted -eq 200  # the exit report stays on stderr
"$check" "$work/expected.tsv" "$work/t3.db"
echo "ok: with \$JOURNAL_STREAM naming stderr, messages go to the journal with their priority"

echo "== 5. log_target syslog"
# syslog(3) writes to /dev/log: in a private mount namespace /dev is a tmpfs
# holding the few devices DPDK opens (bound from the real /dev) and a fake
# /dev/log that keeps every datagram.
cat > "$work/syslog.sh" <<'SH'
set -eu
mkdir -p "$work/olddev"
mount --bind /dev "$work/olddev"
mount -t tmpfs -o mode=755 tmpfs /dev
for n in null zero full random urandom tty; do touch /dev/$n; mount --bind "$work/olddev/$n" /dev/$n; done
mkdir /dev/shm; mount --bind "$work/olddev/shm" /dev/shm
ln -s /proc/self/fd /dev/fd
python3 - "$work/syslog.txt" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
with open(sys.argv[1], "ab", buffering=0) as f:
    while True:
        f.write(s.recv(65536) + b"\n")
PY
lpid=$!
for _ in $(seq 50); do [ -S /dev/log ] && break; sleep 0.1; done
"$tallyd" --log_target syslog --sqlite_path "$work/t4.db" --ctl_socket "$work/s.sock" \
  --dedup_capacity 65536 --table_rows 16384 --stop_after_idle_ms 1000 --run_ms 60000 \
  --port "net_pcap0,rx_pcap=$work/t.pcap" -- -l 0-1 $eal 2> "$work/s.log" || rc=$?
kill $lpid
exit ${rc:-0}
SH
work=$work tallyd=$tallyd eal="${eal_test[*]}" unshare -m --propagation private bash "$work/syslog.sh" ||
  { cat "$work/s.log"; fail "tallyd with log_target syslog exited with an error"; }
# facility daemon (3 << 3) + notice (5) = <29>, no "tallyd: " twice
grep -q "^<29>.* tallyd\[[0-9]*\]: stopping: draining workers and flushing$" "$work/syslog.txt" ||
  { cat "$work/syslog.txt"; fail "the stop notice did not reach syslog as daemon.notice"; }
grep -q "^<30>.* tallyd\[[0-9]*\]: RX pool: " "$work/syslog.txt" || fail "no daemon.info line"
grep -q "^tallyd: stopping" "$work/s.log" && fail "the notice went to stderr as well"
"$check" "$work/expected.tsv" "$work/t4.db"
echo "ok: log_target syslog writes daemon.LEVEL lines to /dev/log"
echo "PASS ctl-cli"
