/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Port setup: find or probe the input device, configure its RX queues (RSS when
 * more than one), checksum offload where the PMD has it, and start it. PMD quirks
 * stay here so the worker loop stays clean.
 */
#ifndef TALLY_PORT_H
#define TALLY_PORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "port_sizing.h"

struct rte_mempool;

/* devargs "" = the first port the EAL arguments brought up. */
int tally_port_find(const char *devargs, uint16_t *port_id, char *err, size_t errlen);
/* nb_txq: TX queues wanted (one per worker, for acks); set to how many the
 * device gave (fewer when it has fewer). */
int tally_port_start(uint16_t port_id, uint16_t nb_rxq, uint16_t *nb_txq, uint16_t rx_desc,
		     struct rte_mempool *mp, char *err, size_t errlen);
/* Fill need's rx_* and tx_* with what tally_port_start will set up (after the
 * PMD's descriptor limits), so the pool is sized before the port starts. */
int tally_port_plan(uint16_t port_id, uint16_t nb_rxq, uint16_t nb_txq, uint16_t rx_desc,
		    struct tally_pool_need *need, char *err, size_t errlen);
void tally_port_stop(uint16_t port_id);
/* "port 0 (net_memif): link up 10 Gbps full-duplex" or "link down: waiting...". */
void tally_port_report_link(uint16_t port_id, FILE *out);
/* Warn when a worker's lcore is not on its port's socket. */
void tally_port_check_lcore(uint16_t port_id, unsigned lcore, unsigned worker, FILE *out);

#endif
