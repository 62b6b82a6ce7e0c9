#!/usr/bin/env bash
# Bad start-up input gets a clear error naming the key (and file and line), a
# non-zero exit, and never a hang or a silent default.
. "$(dirname "$0")/lib.sh"

# expect_error "message part" tallyd args...
expect_error() {
  local want=$1; shift
  if timeout 60 "$tallyd" "$@" > "$work/out" 2>&1; then
    cat "$work/out"; fail "tallyd $* succeeded, expected an error"
  fi
  grep -qF -- "$want" "$work/out" || { cat "$work/out"; fail "error for '$*' does not say '$want'"; }
  echo "ok: $* -> $(grep -F -- "$want" "$work/out" | head -n 1)"
}

expect_error 'unknown' --windw_ms=5
expect_error 'window_ms' --windw_ms=5
expect_error 'window_ms' --window_ms=abc
expect_error 'window_ms' --window_ms=0
expect_error 'sink' --sink=mysql
expect_error 'mac_keys' --mac_keys=1:zz
expect_error 'No such file' -c "$work/missing.conf"
printf 'window_ms = 1000\n# comment\nflush_interval_ms = 5\n' > "$work/bad.conf"
expect_error "bad.conf:3" -c "$work/bad.conf"
printf 'window_ms = 1000\nnot_a_key = 1\n' > "$work/bad2.conf"
expect_error "bad2.conf:2" -c "$work/bad2.conf"
expect_error 'both' --tly1_port=0 --statsd_port=0
expect_error 'spool_dir' --spool_dir= --port=net_null0
expect_error 'spool' --spool_dir=/proc/tally-spool --sqlite_path="$work/x.db" \
  --ctl_socket="$work/c.sock" --port=net_null0 -- -l 0-1 "${eal_test[@]}"
expect_error 'metrics_addr: "localhost:9125" is not IPv4:port' --metrics_addr=localhost:9125
expect_error 'metrics_addr: "127.0.0.1:99999"' --metrics_addr=127.0.0.1:99999
# An address this host does not have: the bind fails at start, naming the key.
expect_error 'metrics_addr: cannot listen on 192.0.2.1:9125' --metrics_addr=192.0.2.1:9125 \
  --sqlite_path="$work/m.db" --ctl_socket="$work/m.sock" --port=net_null0 -- -l 0-1 "${eal_test[@]}"
expect_error 'lcore' --sqlite_path="$work/x.db" --ctl_socket="$work/c.sock" --port=net_null0 \
  -- -l 0 "${eal_test[@]}"
expect_error 'probe' --sqlite_path="$work/x.db" --ctl_socket="$work/c.sock" \
  --port=net_nosuchpmd0 -- -l 0-1 "${eal_test[@]}"
if "$tallyctl" -s "$work/none.sock" stats > "$work/out" 2>&1; then fail "tallyctl without daemon succeeded"; fi
grep -q 'cannot reach tallyd' "$work/out" || fail "tallyctl error unclear: $(cat "$work/out")"
echo "ok: tallyctl without a daemon says: $(cat "$work/out")"
echo "PASS bad-config"
