#!/usr/bin/env bash
# Acks end to end over net_pcap: tally-gen writes TLY1 datagrams with ACK_REQ
# (duplicates, malformed ones, IPv6 and VLAN frames); tallyd replays them and
# writes its TLA1 acks to a tx_pcap. ack_mode=committed: one committed ack per
# accepted datagram, each batch_seq once, none for a datagram that was not
# accepted; a malformed ack for each rejected datagram whose header is
# readable; frames well formed (checksums), sent back to the request's MAC.
# ack_mode=accepted: the same with status accepted. ack_mode=none: no frame.
# (Idle stop at 4 s: on a loaded 2-core machine a starved worker looked idle.)
. "$(dirname "$0")/lib.sh"
[ -n "${KEEP:-}" ] && trap "echo kept $work" EXIT
acks=$src/tests/integration/ack_pcap.py

"$gen" --proto tly1 --keys 500 --events-per-dgram 5 --count 4000 --ack-req \
  --dup-rate 0.05 --malformed-rate 0.05 --ipv6-share 0.2 --vlan-share 0.2 \
  --time-ms "$now_ms" --time-span-ms 20000 --window-ms 10000 --seed 5 \
  --pcap "$work/in.pcap" --expected "$work/exp.tsv" > "$work/gen.txt"

run() { # run MODE [NAME [FLUSH_MS]]: tallyd over in.pcap, acks to NAME.pcap
  local name=${2:-$1}
  rm -f "$work/tally.db"
  "$tallyd" --window_ms 10000 --sqlite_path "$work/tally.db" --ctl_socket "$work/ctl.sock" \
    --stop_after_idle_ms 4000 --run_ms 60000 --flush_interval_ms "${3:-100}" --ack_mode "$1" \
    --port "net_pcap0,rx_pcap=$work/in.pcap,tx_pcap=$work/$name.pcap" \
    -- -l 0-1 "${eal_test[@]}" 2> "$work/$name.log" || { cat "$work/$name.log"; fail "tallyd exited $?"; }
  "$check" "$work/exp.tsv" "$work/tally.db"
}

# "exit": no flush before the stop, so every committed ack waits for the last
# flush at exit and goes out after it (tally_worker_ack_drain).
for name in committed exit accepted; do
  mode=$name
  if [ $name = exit ]; then mode=committed; run committed exit 600000; else run $mode; fi
  log=$work/$name.log
  txt=$work/$name.txt
  want=$([ $mode = committed ] && echo 0 || echo 1)
  "$acks" "$work/$name.pcap" > "$txt" || fail "$name: malformed ack frames"
  good=$(counter "$log" tly1_datagrams)
  n=$(awk -v s="$want" '$1 == s' "$txt" | wc -l)
  uniq=$(awk -v s="$want" '$1 == s { print $3 }' "$txt" | sort -u | wc -l)
  [ "$n" -eq "$good" ] || fail "$name: $n acks with status $want for $good accepted datagrams"
  [ "$uniq" -eq "$good" ] || fail "$name: $uniq distinct batch_seqs acked, $good accepted"
  echo "ok: $name: $n acks with status $want, one per accepted datagram"
  expect_counter "$log" "ack_$mode" -eq "$good"
  rej=$(awk '$1 == 2 || $1 == 3' "$txt" | wc -l)
  expect_counter "$log" ack_malformed -eq "$rej"
  [ "$rej" -gt 0 ] || fail "$name: no rejected datagram was answered"
  other=$(awk -v s="$want" '$1 != s && $1 != 2 && $1 != 3' "$txt" | wc -l)
  [ "$other" -eq 0 ] || fail "$name: $other acks with an unexpected status"
  # every ack goes back to tally-gen's source MAC and sender
  bad=$(awk '$4 != "02:00:00:00:00:02" || $2 != 31249' "$txt" | wc -l)
  [ "$bad" -eq 0 ] || fail "$name: $bad acks to the wrong MAC or sender"
  expect_counter "$log" tly1_ack_unsent -eq 0
done

run none
[ "$(python3 -c "import os,sys; print(os.path.getsize(sys.argv[1]))" "$work/none.pcap")" -le 24 ] ||
  fail "none: acks were sent"
expect_counter "$work/none.log" tly1_ack_unsent -gt 0
echo "PASS acks"
