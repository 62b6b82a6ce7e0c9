/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The worker -> archiver hand-off of accepted datagrams (archive_dir). A worker
 * never copies a payload: it notes where the datagram sits in its mbuf (a
 * 16-byte note; the arrival time and destination port go into the mbuf's RSS
 * hash field, which nothing reads after RX), enqueues a whole burst's notes on
 * its own single-producer single-consumer rte_ring, and gives the enqueued
 * mbufs to the archiver instead of freeing them: no reference count, no atomic,
 * no copy on the worker core. The archiver copies the bytes into its compressed
 * block and frees the mbufs.
 *
 * (Measured with perf/archive_cost.sh: the first version took a reference per
 * mbuf, rte_mbuf_refcnt_update +1, and let the worker's free drop it; the
 * atomic decrements on lines the archiver was also writing cost the worker
 * +100% cycles per event in scenario A.)
 *
 * When the ring is full the archiver is behind: the datagrams the ring has no
 * room for are left out of the archive (archive_ring_full) and never out of
 * the counts; the worker never waits. The room is read once per burst, before
 * the notes, so datagrams left out cost the worker no note, enqueue or merge. The ring's mbufs are part of the RX pool's
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

/* One datagram, 16 bytes: four to a cache line of the ring. */
struct tally_arch_note {
	struct rte_mbuf *m; /* m->hash: arrival_ms << 16 | dport (tally_arch_stamp) */
	uint16_t off, len;  /* UDP payload: offset in the first segment, length */
	uint16_t sport;
	uint8_t ip_version;
	uint8_t saddr_off;  /* source address: offset in the first segment */
};

_Static_assert(sizeof(struct tally_arch_note) == 16, "archive note is not 16 bytes");

/* 48 bits of ms reach the year 10889. */
static inline uint64_t tally_arch_stamp(uint64_t arrival_ms, uint16_t dport)
{
	return arrival_ms << 16 | dport;
}

#endif
