/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Who may do what on the control socket. The socket file's mode and group
 * (ctl_socket_mode, ctl_socket_group) decide who can connect at all; then
 * tallyd asks the kernel who the peer is (SO_PEERCRED, SO_PEERGROUPS): root and
 * tallyd's own user may use every command, members of ctl_ro_group only the
 * commands that read, everyone else nothing. Pure functions: unit-tested
 * without a socket.
 */
#ifndef TALLY_CTL_ACCESS_H
#define TALLY_CTL_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

enum tally_ctl_access {
	TALLY_CTL_NONE,     /* refused every command */
	TALLY_CTL_READONLY, /* the commands that only read */
	TALLY_CTL_FULL,
};

/* True if the request line (as tallyctl sends it) only reads: stats, status,
 * config [KEY|show|get KEY], rules show|test, sink, spool, archive, where,
 * top, get, acl list, ratelimit show, drain status. Everything else, unknown
 * words included, counts as changing state. */
bool tally_ctl_readonly(const char *line);

/* The access of a peer: uid, primary gid and supplementary groups (n of them)
 * against tallyd's own uid and the read-only group (ro_gid; (gid_t)-1 = none). */
enum tally_ctl_access tally_ctl_peer_access(uid_t uid, gid_t gid, const gid_t *groups,
					    size_t n, uid_t own_uid, gid_t ro_gid);

/* A group given by name or number; 0, or -ENOENT with err naming key. */
int tally_ctl_group(const char *key, const char *name, gid_t *gid, char *err, size_t errlen);

#endif
