#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Receive over net_memif by copy (the receiver is the memif server, as in
# perf/bench.py) against zero-copy (the receiver is the client with
# zero-copy=yes: memif's zero-copy mode exists only on the client side, where
# the server writes frames straight into the client's mbufs, so the copy moves
# to the sender's core). For tally-null and tallyd, scenario A's traffic,
# alternating, RUNS times each; tallyd's runs are checked exactly (tally-check).
# tallyd gets a 4M-id dedup table (pre-faulted in well under a second): in
# zero-copy mode the generator, the memif server, starts first and would wait
# out the pre-fault of a large one inside its --duration.
#   perf/memif_zc.sh [BUILD] [RUNS] [SECONDS]
set -u
top=$(cd "$(dirname "$0")/.." && pwd); build=${1:-$top/build}; runs=${2:-3}; secs=${3:-5}
eal=(--no-huge --no-pci -m 512 --log-level='*:warning')
traffic=(--proto tly1 --events-per-dgram 1 --keys 1000000 --pool 1048576 --dup-rate 0.05
         --malformed-rate 0.01 --window-ms 10000 --flows 64)
one() { # receiver(null|tally) mode(copy|zc) -> "mpps exact"
	local recv=$1 mode=$2 d; d=$(mktemp -d /tmp/tally-zc.XXXXXX)
	local rrole=server grole=client zc=no extra=()
	[ "$mode" = zc ] && { rrole=client; grole=server; zc=yes; extra=(--single-file-segments); }
	local rdev="net_memif0,role=$rrole,socket=$d/m.sock,socket-abstract=no,zero-copy=$zc"
	local gdev="net_memif0,role=$grole,socket=$d/m.sock,socket-abstract=no"
	start_gen() { "$build/perf/tally-gen" "${traffic[@]}" --duration "$secs" --linger 300 \
		--link-timeout 60 --stall-timeout 60 --expected "$d/expected.tsv" --port "$gdev" \
		-- -l 0 "${eal[@]}" --file-prefix zcb-g > "$d/gen.txt" 2>&1 & gp=$!; }
	start_recv() {
		if [ "$recv" = null ]; then
			"$build/perf/tally-null" --duration $((secs + 4)) --port "$rdev" \
				-- -l 1 "${eal[@]}" "${extra[@]}" --file-prefix zcb-r > "$d/recv.txt" 2>&1 & rp=$!
		else
			"$build/ctrlplane/tallyd" --port "$rdev" --sqlite_path "$d/t.db" \
				--ctl_socket "$d/ctl.sock" --spool_dir "$d/spool" --dedup_capacity 4194304 \
				--table_rows 1310720 --stop_after_idle_ms 4000 \
				-- --lcores 0@0,1@1 "${eal[@]}" "${extra[@]}" --file-prefix zcb-r > "$d/recv.txt" 2>&1 & rp=$!
		fi; }
	if [ "$mode" = zc ]; then # the server (generator) first, up before the client connects
		start_gen; for _ in $(seq 100); do [ -S "$d/m.sock" ] && break; sleep 0.1; done; sleep 3; start_recv
	else
		start_recv # tallyd is ready once its control socket is there (tables pre-faulted)
		local ready=$d/m.sock; [ "$recv" = tally ] && ready=$d/ctl.sock
		for _ in $(seq 600); do [ -S "$ready" ] && break; sleep 0.1; done; sleep 1; start_gen
	fi
	wait $rp; wait $gp
	local n s mpps exact=-
	s=$(awk '/^seconds /{print $2; exit}' "$d/gen.txt")
	if [ "$recv" = null ]; then mpps=$(awk '/^mpps /{print $2}' "$d/recv.txt")
	else n=$(awk '/^rx_packets /{print $2}' "$d/recv.txt")
		mpps=$(python3 -c "print(${n:-0} / ${s:-1} / 1e6)")
		"$top/perf/tally-check" "$d/expected.tsv" "$d/t.db" > "$d/check.txt" 2>&1 && exact=exact || exact=NOT-EXACT
	fi
	echo "$recv $mode mpps ${mpps:-0} $exact"
	rm -rf "$d"
}
for i in $(seq "$runs"); do
	for r in null tally; do for m in copy zc; do one $r $m; done; done
done
