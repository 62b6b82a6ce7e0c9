/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Event-id dedup: one lock-free table shared by all workers.
 *
 * Layout: buckets of 8 slots of 8 bytes, one cache line each. A slot holds
 * (fingerprint << 16 | role << 15 | generation); 0 is an empty slot and
 * generation 0 is never used (15 bits: 1..32767, then wraps). h =
 * tally_dedup_hash(event_id) is a bijection of the 64-bit id; its first bucket
 * comes from h's high 32 bits (multiply-shift range reduction), its second from
 * the first plus an offset of the fingerprint, h's low 48 bits. With at least 2^16 buckets two ids that share a fingerprint
 * differ in h's top 16 bits and so land in different buckets: the table has no
 * false positives at all (the proof is in dedup.c).
 *
 * Horizon: time (horizon_ms) and capacity. The control plane advances the
 * generation every horizon_ms / TALLY_DEDUP_GENS or after capacity /
 * TALLY_DEDUP_GENS inserts, whichever comes first; ids of the last
 * TALLY_DEDUP_GENS + 1 generations are live. Slots: 2 x capacity (16 bytes per id
 * of capacity). A full bucket evicts its oldest-generation slot (counted).
 */
#ifndef TALLY_DEDUP_H
#define TALLY_DEDUP_H

#include <stddef.h>
#include <stdint.h>

#define TALLY_DEDUP_GENS 8
#define TALLY_DEDUP_WAYS 8
#define TALLY_DEDUP_MIN_BUCKETS 65536u

struct tally_dedup;

enum tally_dedup_result {
	TALLY_DEDUP_NEW = 0,     /* first sighting: remembered */
	TALLY_DEDUP_DUP = 1,     /* seen within the horizon: drop */
	TALLY_DEDUP_NEW_EVICT = 2, /* new; an older live id was evicted to make room */
};

/* capacity: ids the horizon holds at least. Returns NULL with errno set. */
struct tally_dedup *tally_dedup_create(uint64_t capacity, uint64_t horizon_ms);
void tally_dedup_destroy(struct tally_dedup *d);
size_t tally_dedup_bytes(const struct tally_dedup *d);

/* murmur3 fmix64: a bijection, so distinct ids never share a hash. */
static inline uint64_t tally_dedup_hash(uint64_t id)
{
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdULL;
	id ^= id >> 33;
	id *= 0xc4ceb9fe1a85ec53ULL;
	id ^= id >> 33;
	return id;
}

/* Hot path. gen is tally_dedup_gen() read once per burst. */
void tally_dedup_prefetch(const struct tally_dedup *d, uint64_t h);
enum tally_dedup_result tally_dedup_insert(struct tally_dedup *d, uint64_t h, uint16_t gen);
/* Undo an insert whose event could not be applied (window table full). */
void tally_dedup_forget(struct tally_dedup *d, uint64_t h, uint16_t gen);
uint16_t tally_dedup_gen(const struct tally_dedup *d);

/*
 * Control plane, one caller: advance the generation when the time or the insert
 * budget of the current one is used up (inserted = total inserts so far, summed
 * over workers), and clear up to max_buckets buckets of expired slots.
 * Returns the number of slots cleared.
 */
size_t tally_dedup_tick(struct tally_dedup *d, uint64_t now_ms, uint64_t inserted,
			size_t max_buckets);

#endif
