/* SPDX-License-Identifier: BSD-3-Clause */
/* tally-micro's report helpers, shared by its case files. */
#ifndef TALLY_MICRO_H
#define TALLY_MICRO_H

#include <stddef.h>
#include <stdint.h>

/* One result line (and JSON object): TSC cycles per operation. */
void micro_report(const char *stage, const char *cas, uint64_t ops, uint64_t cycles,
		  size_t bytes);
/* A case computed something wrong: say what and exit 1. */
void micro_fail(const char *what) __attribute__((noreturn));
/* Two workers: one shared dedup table vs ids steered to their owner. */
void micro_dedup_two_workers(uint64_t cap, uint64_t ops);

/* Rules: cost per event by pattern count, with and without the decision cache. */
void micro_rules(uint64_t ops);

#endif
