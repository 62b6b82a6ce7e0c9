/* SPDX-License-Identifier: BSD-3-Clause */
/* Live config and rules changes in a running tallyd (live.c says how). */
#ifndef TALLY_LIVE_H
#define TALLY_LIVE_H

#include <stddef.h>

#include "tallyd.h"

/* At start: load rules_file, if set, into d->rules and the params. 0 or -EINVAL. */
int tally_live_rules_init(struct tally_daemon *d, char *err, size_t errlen);
/* tallyctl config set: a runtime key's new value, applied and logged; -EPERM
 * with "KEY needs a restart" for the others; the old value stays on error. */
int tally_live_set(struct tally_daemon *d, const char *name, const char *value, char *err,
		   size_t errlen);
/* tallyctl rules reload: compile rules_file again and swap it in. */
int tally_live_rules_reload(struct tally_daemon *d, char *err, size_t errlen);
/* SIGHUP: read the config file and overrides again; apply the runtime keys that
 * changed (rolled back if one fails), name the others that need a restart. */
int tally_live_reload_file(struct tally_daemon *d);
/* Control loop: end the grace period of retired MAC keys once it is over. */
void tally_live_mac_expire(struct tally_daemon *d);

#endif
