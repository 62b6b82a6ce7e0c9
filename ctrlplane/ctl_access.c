/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The control socket's access rules (ctl_access.h). The read-only list is
 * an allow-list: a command not named here is treated as one that changes
 * state, so a command added later is refused to read-only peers until
 * someone decides otherwise.
 */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_access.h"

/* Does word w come first in s (followed by a space or the end)? */
static bool first_word(const char *s, const char *w)
{
	size_t n = strlen(w);

	return s != NULL && strncmp(s, w, n) == 0 && (s[n] == '\0' || s[n] == ' ');
}

bool tally_ctl_readonly(const char *line)
{
	static const char *const always[] = {"stats", "status", "sink", "archive", "where",
					     "top", "get", "request-too-long"};
	const char *rest = strchr(line, ' ');

	rest = rest != NULL ? rest + 1 : NULL;
	for (size_t i = 0; i < sizeof(always) / sizeof(always[0]); i++)
		if (first_word(line, always[i]))
			return true;
	if (first_word(line, "config"))
		return !first_word(rest, "set");
	if (first_word(line, "rules"))
		return first_word(rest, "show") || first_word(rest, "test");
	if (first_word(line, "spool"))
		return rest == NULL;
	if (first_word(line, "acl"))
		return first_word(rest, "list");
	if (first_word(line, "ratelimit"))
		return rest != NULL && strcmp(rest, "show") == 0;
	if (first_word(line, "drain"))
		return rest != NULL && strcmp(rest, "status") == 0;
	return false;
}

enum tally_ctl_access tally_ctl_peer_access(uid_t uid, gid_t gid, const gid_t *groups,
					    size_t n, uid_t own_uid, gid_t ro_gid)
{
	if (uid == 0 || uid == own_uid)
		return TALLY_CTL_FULL;
	if (ro_gid == (gid_t)-1)
		return TALLY_CTL_NONE;
	if (gid == ro_gid)
		return TALLY_CTL_READONLY;
	for (size_t i = 0; i < n; i++)
		if (groups[i] == ro_gid)
			return TALLY_CTL_READONLY;
	return TALLY_CTL_NONE;
}

int tally_ctl_group(const char *key, const char *name, gid_t *gid, char *err, size_t errlen)
{
	struct group gr, *res = NULL;
	char buf[4096], *end;
	unsigned long n = strtoul(name, &end, 10);

	if (name[0] != '\0' && *end == '\0' && n < (unsigned long)(gid_t)-1) {
		*gid = (gid_t)n;
		return 0;
	}
	if (getgrnam_r(name, &gr, buf, sizeof(buf), &res) == 0 && res != NULL) {
		*gid = gr.gr_gid;
		return 0;
	}
	snprintf(err, errlen, "%s: no group \"%s\" on this system", key, name);
	return -ENOENT;
}
