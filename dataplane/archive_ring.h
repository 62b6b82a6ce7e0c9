/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The worker -> archiver hand-off of accepted datagrams (archive_dir). A worker
 * never copies a payload: it notes where the datagram sits in its mbuf, takes
 * one more reference on the mbuf (rte_mbuf_refcnt_update, a plain store while
 * the worker is its only owner) and enqueues the notes of a whole burst on its
 * own single-producer single-consumer rte_ring; its usual rte_pktmbuf_free_bulk
 * then drops only its own reference. The archiver thread copies the bytes into
 * its compressed block and frees the mbuf.
 *
 * When the ring is full the archiver is behind: the datagrams the ring did not
 * take are left out of the archive (archive_ring_full) and never out of the
 * counts; the worker never waits. The ring's mbufs are part of the RX pool's
 * size (tally_pool_need.held), so a slow archiver cannot starve the NIC.
 */
#ifndef TALLY_ARCHIVE_RING_H
#define TALLY_ARCHIVE_RING_H

#include <stdint.h>

/* Notes per worker ring: 16 ms at 1 Mpps, or a 16k-frame pcap replayed at
 * memory speed, while the archiver shares the main lcore's CPU with the
 * control loop, flusher and sink writer. Its mbufs are added to the RX pool. */
#define TALLY_ARCHIVE_RING 16384

struct rte_mbuf;

/* One datagram, 32 bytes (rte_ring element sizes are multiples of 4). */
struct tally_arch_note {
	struct rte_mbuf *m;
	uint64_t arrival_ms;
	uint16_t off, len;  /* UDP payload: offset in the first segment, length */
	uint16_t sport, dport;
	uint8_t ip_version;
	uint8_t saddr_off;  /* source address: offset in the first segment */
	uint8_t pad[6];
};

_Static_assert(sizeof(struct tally_arch_note) == 32, "archive note is not 32 bytes");

#endif
