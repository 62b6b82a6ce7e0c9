/* SPDX-License-Identifier: BSD-3-Clause */
/* The sink writer's lanes built from the config (sink_config.c). */
#ifndef TALLY_SINK_CONFIG_H
#define TALLY_SINK_CONFIG_H

#include <stddef.h>

#include "sink_writer.h"

struct tally_config;

/* Set w up (not started) from c; spool_dir receives the spool directory used
 * (it must outlive w). 0 or -errno with err. */
int tally_writer_from_config(struct tally_writer *w, const struct tally_config *c,
			     char *spool_dir, size_t spool_len, char *err, size_t errlen);

#endif
