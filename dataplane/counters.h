/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Every counter and drop reason Tally has, declared once. The X-macro expands into
 * the enum, the names shown by `tallyctl stats` and the metrics, and their help
 * text, so a new drop reason is one line here and nowhere else.
 *
 * Workers each own a struct tally_counters (single writer, plain increments); the
 * control plane sums them when it is asked. Parsers return a counter id as their
 * drop reason; id 0 (rx_packets) is never a drop reason, so 0 means "accepted".
 */
#ifndef TALLY_COUNTERS_H
#define TALLY_COUNTERS_H

/* The BPF program (ebpf/tally_xdp.bpf.c) includes this file for the XDP
 * counter ids alone: it has no libc, so only the X-macro and enum are shared. */
#ifndef __bpf__
#include <stdint.h>
#endif

#define TALLY_COUNTERS(_) \
	_(RX_PACKETS, "rx_packets", "frames received from the port") \
	_(RX_BYTES, "rx_bytes", "bytes of frames received") \
	_(RX_BURSTS, "rx_bursts", "non-empty bursts received") \
	/* frame, IP and UDP: the frame is dropped whole */ \
	_(DROP_RUNT, "drop_runt", "frame shorter than its Ethernet/VLAN headers") \
	_(DROP_VLAN_DEPTH, "drop_vlan_depth", "more than two VLAN tags") \
	_(DROP_ETHERTYPE, "drop_ethertype", "ethertype is not IPv4 or IPv6") \
	_(DROP_IP_HDR, "drop_ip_hdr", "IP header truncated, wrong version or bad IHL") \
	_(DROP_IP_LEN, "drop_ip_len", "IP total/payload length points past the frame or below the header") \
	_(DROP_IP_CSUM, "drop_ip_csum", "bad IPv4 header checksum") \
	_(DROP_IP_FRAG, "drop_ip_frag", "IP fragment (not reassembled)") \
	_(DROP_IP_PROTO, "drop_ip_proto", "IP protocol is not UDP") \
	_(DROP_IPV6_EXT, "drop_ipv6_ext", "IPv6 extension header present") \
	_(DROP_UDP_LEN, "drop_udp_len", "UDP length is short or points past the IP payload") \
	_(DROP_UDP_CSUM, "drop_udp_csum", "bad UDP checksum (or zero over IPv6)") \
	_(DROP_UDP_PORT, "drop_udp_port", "UDP destination port is not a Tally port") \
	/* TLY1 datagrams: dropped whole, nothing applied */ \
	_(TLY1_DATAGRAMS, "tly1_datagrams", "TLY1 datagrams accepted") \
	_(TLY1_SHORT, "tly1_short", "TLY1 datagram shorter than its header") \
	_(TLY1_BAD_MAGIC, "tly1_bad_magic", "TLY1 magic is not \"TLY1\"") \
	_(TLY1_RESERVED_FLAGS, "tly1_reserved_flags", "TLY1 reserved flag bits set") \
	_(TLY1_BAD_COUNT, "tly1_bad_count", "TLY1 event count is 0 or above 1024") \
	_(TLY1_TRUNCATED, "tly1_truncated", "TLY1 events run past the end of the datagram") \
	_(TLY1_TRAILING, "tly1_trailing", "TLY1 bytes left after the declared events (too long)") \
	_(TLY1_ZERO_KEY, "tly1_zero_key", "TLY1 event with key_len 0") \
	_(TLY1_BAD_UTF8, "tly1_bad_utf8", "TLY1 key is not valid UTF-8 or holds a NUL") \
	_(TLY1_ZERO_SENDER, "tly1_zero_sender", "TLY1 sender_id is 0") \
	_(TLY1_KEYID_NO_MAC, "tly1_keyid_no_mac", "TLY1 key_id set without the MAC flag") \
	_(TLY1_MAC_MISSING, "tly1_mac_missing", "TLY1 MAC flag set but no 16-byte trailer") \
	_(TLY1_MAC_NO_KEY, "tly1_mac_no_key", "TLY1 MAC under a key_id that is not configured") \
	_(TLY1_MAC_BAD, "tly1_mac_bad", "TLY1 MAC does not verify") \
	_(TLY1_MAC_REQUIRED, "tly1_mac_required", "TLY1 datagram without a MAC while require_mac is on") \
	_(TLY1_MAC_OLD_KEY, "tly1_mac_old_key", "TLY1 datagrams accepted under a retired key in its grace period (mac_grace_ms): producers still to switch") \
	_(TLY1_COMMITTED_BEFORE, "tly1_committed_before", "TLY1 ACK_REQ datagrams dropped whole and acked committed: committed before this start, or by another appliance on the same sink (a retransmit after a crash or a failover)") \
	_(COMMITTED_KNOWN, "committed_known", "committed datagrams the workers recognise now (from the start, and other appliances' within dedup_horizon_ms) (gauge)") \
	_(COMMITTED_REFRESHES, "committed_refreshes", "reads of other appliances' committed datagram lists (committed_refresh_ms)") \
	_(COMMITTED_REFRESH_ERRORS, "committed_refresh_errors", "failed reads of other appliances' committed datagram lists (tallyctl status: last error)") \
	_(TLY1_ACK_UNSENT, "tly1_ack_unsent", "TLY1 acks not sent: TX queue full, no mbuf, no TX queue for the worker, or a batch lost at exit (the sender retransmits)") \
	/* TLA1 acks sent, by status; and why some were not */ \
	_(ACK_COMMITTED, "ack_committed", "acks sent with status committed (ack_mode=committed, after the flush was durable)") \
	_(ACK_ACCEPTED, "ack_accepted", "acks sent with status accepted (ack_mode=accepted)") \
	_(ACK_MALFORMED, "ack_malformed", "acks sent with status malformed (datagram rejected, header readable)") \
	_(ACK_UNAUTHENTICATED, "ack_unauthenticated", "acks sent with status unauthenticated (MAC missing, unknown key or bad)") \
	_(ACK_OVERLOADED, "ack_overloaded", "acks sent with status overloaded (window table full, or no free ack list)") \
	_(ACK_TX_FULL, "ack_tx_full", "acks the TX queue did not take (dropped, or retried for committed acks)") \
	_(ACK_NO_MBUF, "ack_no_mbuf", "acks not sent: the mbuf pool was empty") \
	_(ACK_LIST_FULL, "ack_list_full", "accepted datagrams answered overloaded because every committed-ack list was in flight") \
	/* StatsD lines: a bad line is dropped, the rest of the datagram counts */ \
	_(STATSD_DATAGRAMS, "statsd_datagrams", "StatsD datagrams received") \
	_(STATSD_LINES, "statsd_lines", "StatsD lines accepted by the parser") \
	_(STATSD_BAD_NAME, "statsd_bad_name", "StatsD line without name or ':'") \
	_(STATSD_BAD_VALUE, "statsd_bad_value", "StatsD value is not a finite decimal number") \
	_(STATSD_BAD_TYPE, "statsd_bad_type", "StatsD type is not c, g, ms, h or d") \
	_(STATSD_BAD_SET, "statsd_bad_set", "StatsD set (|s) line with an empty member") \
	_(STATSD_BAD_REL_GAUGE, "statsd_bad_rel_gauge", "StatsD relative gauge: the text after + or - is not a finite decimal number") \
	_(STATSD_BAD_RATE, "statsd_bad_rate", "StatsD sample rate not in (0, 1]") \
	_(STATSD_BAD_TS, "statsd_bad_ts", "StatsD |T timestamp is not unix seconds") \
	_(STATSD_BAD_FIELD, "statsd_bad_field", "StatsD line has an unknown or repeated field") \
	_(STATSD_KEY_TOO_LONG, "statsd_key_too_long", "StatsD canonical key longer than 255 bytes") \
	_(STATSD_BAD_UTF8, "statsd_bad_utf8", "StatsD line is not valid UTF-8 or holds a NUL") \
	/* events */ \
	_(DROP_INTERNAL, "drop_internal", "datagram dropped: a parser result out of range (a bug: report it)") \
	_(EVENTS_IN, "events_in", "events parsed from good datagrams and lines") \
	_(EVENTS_ACCEPTED, "events_accepted", "events added to a window") \
	_(DROP_LATE, "drop_late", "event older than the allowed lateness") \
	_(DROP_FUTURE, "drop_future", "event further in the future than the allowed skew") \
	_(DROP_DUPLICATE, "drop_duplicate", "event id seen within the dedup horizon") \
	_(DROP_TABLE_FULL, "drop_table_full", "window table full and no spare table") \
	_(STATSD_SKETCH_FULL, "statsd_sketch_full", "StatsD values counted in their row but missing from its sketch or HyperLogLog: the table's sketch pool (sketch_rows) was used up") \
	_(DEDUP_INSERTED, "dedup_inserted", "event ids remembered") \
	_(DEDUP_EVICTED, "dedup_evicted", "live ids evicted early because their bucket was full") \
	_(DEDUP_CAS_GAVE_UP, "dedup_cas_gave_up", "ids counted as new, not remembered: 8 lost compare-and-swaps, or a slot another worker kept claimed for 50 ms (contention)") \
	_(DEDUP_GEN_HELD, "dedup_gen_held", "dedup generation changes held back: the sweeper was behind") \
	/* rules (rules_file): decided once per (key, window), applied per event */ \
	_(RULES_DROPPED, "rules_dropped", "events dropped by a drop rule") \
	_(RULES_SAMPLED_OUT, "rules_sampled_out", "events a sample rule did not keep") \
	_(RULES_RENAMED, "rules_renamed", "events whose key a rename rule changed") \
	_(RULES_RENAME_BAD, "rules_rename_bad", "events kept under their own key: the rename gave an empty key, one over 255 bytes, or a StatsD name with '|'") \
	_(RULES_CACHE_MISSES, "rules_cache_misses", "rule decisions computed with Hyperscan (decision-cache misses)") \
	_(RULES_SCAN_ERRORS, "rules_scan_errors", "Hyperscan scans that failed: the event was kept (a bug: report it)") \
	_(RULES_RELOADS, "rules_reloads", "rules databases swapped in (tallyctl rules reload, config set rules_file, SIGHUP)") \
	_(RULES_RELOAD_ERRORS, "rules_reload_errors", "rules reloads refused (bad file): the old rules stayed") \
	_(CONFIG_CHANGES, "config_changes", "runtime config keys changed (tallyctl config set, SIGHUP)") \
	_(WINDOW_ROWS, "window_rows", "(key, window) rows created in worker tables") \
	_(TABLES_SEALED, "tables_sealed", "window tables handed to the flusher") \
	_(SEAL_DEFERRED, "seal_deferred", "flush ticks skipped because no spare table was free") \
	_(WORKER_POLL_GAPS_100US, "worker_poll_gaps_100us", "times a worker polled its RX queues more than 100 us after its last poll (a long burst, a seal, the OS took its CPU): the queue must hold rate x gap frames meanwhile") \
	_(WORKER_POLL_GAPS_1MS, "worker_poll_gaps_1ms", "worker polls more than 1 ms after the last: at 1 Mpps each needs 1,000 RX descriptors (rx_desc) to lose nothing") \
	_(WORKER_POLL_GAPS_10MS, "worker_poll_gaps_10ms", "worker polls more than 10 ms after the last: more than any rx_desc absorbs at line rate") \
	_(WORKER_POLL_GAP_US, "worker_poll_gap_us", "time of the poll gaps over 100 us, summed, in us (seconds in Prometheus): compare worker_cpu_taken_us, how much of it the CPU ran something else") \
	_(WORKER_CYCLES, "worker_cycles", "TSC cycles spent processing non-empty bursts") \
	/* raw-event archive (archive_dir): never a drop from the counts */ \
	_(ARCHIVE_RING_FULL, "archive_ring_full", "accepted datagrams left out of the archive: the archiver's ring was full (they were counted)") \
	_(ARCHIVE_DATAGRAMS, "archive_datagrams", "datagrams written to the archive") \
	_(ARCHIVE_BYTES, "archive_bytes", "compressed bytes written to the archive") \
	_(ARCHIVE_DROPPED_DISK, "archive_dropped_disk", "datagrams left out of the archive: a write failed or it was paused (disk full)") \
	_(ARCHIVE_DISK_FULL, "archive_disk_full", "archive writes that failed (disk full, I/O error): the archive paused, counting went on") \
	_(ARCHIVE_PAUSED, "archive_paused", "1 while the archive is paused after a failed write (gauge; alarm)") \
	_(ARCHIVE_SEGMENTS_DELETED, "archive_segments_deleted", "archive segments deleted by archive_retention_ms or archive_max_bytes") \
	/* flusher and sink */ \
	_(FLUSH_BATCHES, "flush_batches", "flush batches committed to the sink (a replay found committed before counts too)") \
	_(FLUSH_ROWS, "flush_rows", "rows committed to the sink") \
	_(FLUSH_EVENTS, "flush_events", "events committed to the sink (sum of row counts)") \
	_(FLUSH_EMPTY, "flush_empty", "flush ticks with nothing to write") \
	_(SINK_ERRORS, "sink_errors", "sink opens and writes that failed (the batch went to the spool)") \
	_(SINK_SKIPPED, "sink_skipped", "batches the sink had applied before (replay skipped)") \
	_(SINK_PERMANENT_ERRORS, "sink_permanent_errors", "sink errors retrying cannot fix (data, schema, credentials): the lane holds until tallyctl spool replay") \
	_(SINK_QUEUE_FULL, "sink_queue_full", "times the flusher waited: the sink writer's queue was full") \
	_(SPOOL_APPENDED, "spool_appended", "batch parts written to the spool (sink down, slow or behind its spool)") \
	_(SPOOL_REPLAYED, "spool_replayed", "spooled batch parts replayed into their sink") \
	_(SPOOL_ERRORS, "spool_errors", "spool appends or syncs that failed (full, disk error): the batch is kept and retried") \
	_(SPOOL_RECORDS, "spool_records", "batch parts in the spools waiting for replay (gauge)") \
	_(SPOOL_BYTES, "spool_bytes", "bytes in the spools waiting for replay (gauge)") \
	_(SPOOL_CORRUPT, "spool_corrupt", "spool records found corrupt and skipped (reported)") \
	_(SPOOL_TORN, "spool_torn", "torn spool tails found and truncated at start") \
	_(SPOOL_FULL_REFUSALS, "spool_full_refusals", "spool appends refused: spool_max_bytes reached") \
	_(BREAKER_OPENS, "breaker_opens", "times a sink lane's circuit breaker opened") \
	_(FLUSH_PENDING, "flush_pending", "batches queued for the sink writer (gauge)") \
	_(FLUSH_MERGE_FULL, "flush_merge_full", "merge table filled mid-flush: the merged rows went out as a batch of their own") \
	_(FLUSH_ROWS_LOST, "flush_rows_lost", "rows NOT stored: neither the sink nor the spool took them before tallyd was told to give up") \
	_(FLUSH_EVENTS_LOST, "flush_events_lost", "events in the rows of flush_rows_lost") \
	_(SEAL_TIMEOUTS, "seal_timeouts", "seal requests a worker left unanswered for 2 s (stalled)") \
	/* control thread (filled from the daemon when read) */ \
	_(CTL_LATE_TICKS, "ctl_late_ticks", "control-loop timer periods missed (dedup ticks, clock sync): should stay 0") \
	_(CTL_REQUESTS, "ctl_requests", "control-socket requests answered") \
	_(CTL_BAD_REQUESTS, "ctl_bad_requests", "control-socket requests longer than 4096 bytes") \
	_(CTL_CLIENT_TIMEOUTS, "ctl_client_timeouts", "control clients dropped: no whole exchange within 1 s") \
	_(CTL_REFUSED, "ctl_refused", "control clients refused: 64 already connected") \
	_(CTL_DENIED, "ctl_denied", "control requests refused: the peer may not use that command (ctl_ro_group, socket permissions)") \
	_(CTL_DRAINED, "ctl_drained", "1 while tallyctl drain holds the workers off the RX queues (gauge)") \
	_(CLOCK_STEPS, "clock_steps", "arrival-clock steps forward to a wall clock >1 s ahead (back: slewed)") \
	_(WATCHDOG_STALLS, "watchdog_stalls", "workers or flusher found stalled: no heartbeat for 500 ms") \
	_(WATCHDOG_SINK_STALLS, "watchdog_sink_stalls", "sink writes (or the sink writer) silent for 500 ms: a slow or gone sink") \
	_(WATCHDOG_RX_LOST, "watchdog_rx_lost", "frames the NIC dropped (imissed) while a worker was stalled: lost, not processed") \
	_(WORKER_PREEMPTED, "worker_preempted", "times the kernel took a worker's CPU for another task (the worker threads' nonvoluntary context switches): the worker cores are not isolated") \
	_(WORKER_CPU_TAKEN_US, "worker_cpu_taken_us", "time the workers were ready to run while their CPU ran another task (schedstat run-queue wait), in us (seconds in Prometheus): frames wait in the RX queue meanwhile") \
	/* XDP front (ebpf/tally_xdp.bpf.c): per-CPU in the kernel, summed when read; keep \
	 * them together and in this order, the program indexes its array from XDP_PASS */ \
	_(XDP_PASS, "xdp_pass", "frames the XDP program gave to the kernel: not Tally's (ARP, ND, ICMP, TCP, other ports, truncated headers)") \
	_(XDP_REDIRECT, "xdp_redirect", "datagrams the XDP program sent to tallyd's AF_XDP socket of their queue") \
	_(XDP_DROP_SHORT, "xdp_drop_short", "XDP: datagram to the TLY1 port shorter than a TLY1 header (or a UDP length below 8)") \
	_(XDP_DROP_MAGIC, "xdp_drop_magic", "XDP: datagram to the TLY1 port without the magic \"TLY1\"") \
	_(XDP_DROP_STATSD_LEN, "xdp_drop_statsd_len", "XDP: StatsD datagram empty or longer than xdp_statsd_max_len") \
	_(XDP_DROP_FRAG, "xdp_drop_frag", "XDP: first IPv4 fragment of a datagram to a Tally port (not reassembled)") \
	_(XDP_DROP_ACL, "xdp_drop_acl", "XDP: source address not in the allow-list (acl, tallyctl acl)") \
	_(XDP_DROP_RATE, "xdp_drop_rate", "XDP: source over its token bucket (ratelimit_pps, ratelimit_burst)") \
	_(XDP_DROP_NO_SOCKET, "xdp_drop_no_socket", "XDP: datagram on a queue with no AF_XDP socket (more NIC queues than tallyd's)") \
	/* exception path (exception_port): frames that are not Tally's, to and from the kernel */ \
	_(EXC_TO_KERNEL, "exception_to_kernel", "frames not Tally's (ARP, ND, ICMP, TCP, other ports, fragments) handed to the kernel's exception interface") \
	_(EXC_FROM_KERNEL, "exception_from_kernel", "frames the kernel sent out of the port through the exception interface") \
	_(EXC_DROPPED, "exception_dropped", "frames for the kernel dropped: over exception_max_per_burst, the hand-off ring full, or the interface refused them") \
	/* port (filled from rte_eth_stats when read) */ \
	_(PORT_IMISSED, "port_imissed", "frames the NIC dropped: RX queue full") \
	_(PORT_NOMBUF, "port_rx_nombuf", "frames the NIC dropped: no mbuf") \
	_(PORT_IERRORS, "port_ierrors", "frames the NIC reported as erroneous")

enum tally_counter {
#define TALLY_C_ENUM(e, n, h) TALLY_C_##e,
	TALLY_COUNTERS(TALLY_C_ENUM)
#undef TALLY_C_ENUM
	TALLY_C_MAX
};

/* Accepted: parsers return this, never a real drop reason. */
#define TALLY_OK 0
#define TALLY_XDP_NCOUNTERS (TALLY_C_XDP_DROP_NO_SOCKET - TALLY_C_XDP_PASS + 1)

#ifndef __bpf__
struct tally_counters {
	uint64_t v[TALLY_C_MAX];
} __attribute__((aligned(64)));

extern const char *const tally_counter_names[TALLY_C_MAX];
extern const char *const tally_counter_help[TALLY_C_MAX];
#endif /* __bpf__ */

#endif
