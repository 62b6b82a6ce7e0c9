/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the two Redis sinks (sink_redis.c, sink_redis_cluster.c) share: bounded
 * hiredis connections with errors mapped to errnos, the names of the keys, the
 * one Lua script that applies a chunk of rows exactly once, and a pipeline that
 * sends many chunk calls to one node and classes each reply.
 *
 * A batch is cut into calls: a call is at most TALLY_REDIS_CHUNK rows of one
 * hash slot (the standalone sink has one slot, -1), cut in batch order, so the
 * same batch always cuts the same way. Each call carries its own marker key
 * (appliance, seq, slot, chunk), checked and set by the script atomically with
 * the rows: a retry of a batch whose calls were partly applied re-applies
 * none of them. Keys (binary-safe; `P` is redis_prefix):
 *   P c:<window_ms>:<window_start_ms>:<key>   hash: count sum min max last
 *   P b:<appliance>:<seq>:<chunk>             standalone marker (committed_ms)
 *   P b:<appliance>:<seq>:<slot>:<chunk>:{t}  cluster marker; tag t hashes to slot
 *   P seq:<appliance>                         highest seq with any part applied
 *   P q<T>:<window_ms>:<window_start_ms>:<key>  hash: a timer's DDSketch bins
 *                       (z: zero, p<i>/n<i>: bin i of the positive/negative store)
 *   P h<T>:<window_ms>:<window_start_ms>:<key>  a set's HyperLogLog (PFCOUNT-able)
 * <T> is {t}, the row's slot's tag, in a cluster (the same slot as its row) and
 * empty on one server. The chunk script merges each batch's sketch into them
 * under the chunk's marker, so exactly once, and stores in the row's hash what
 * plain HGET reads: the percentile fields (p50 p90 ... as statsd_percentiles)
 * and `dds` (the bins key) for a timer, `distinct` (PFCOUNT) and `hll` for a set.
 */
#ifndef TALLY_REDIS_COMMON_H
#define TALLY_REDIS_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "batch.h"
#include "sink.h"
#include "sketch.h"

/* Rows per script call: bounds the Lua argument list (6 arguments a row). */
#define TALLY_REDIS_CHUNK 1000
#define TALLY_REDIS_SLOTS 16384
/* Calls in flight per node before their replies are read. */
#define TALLY_REDIS_WINDOW 64

struct tally_redis_node {
	struct redisContext *c; /* NULL until connected, and after any I/O error */
	char host[64];
	int port;
	char id[41];  /* cluster node id, from CLUSTER SLOTS */
	int replicas; /* WAIT for one of them when > 0 */
	uint32_t gen; /* bumped at each connect: tells a call's connection from a later one */
	bool script_loaded;
	bool bad;     /* its last connection ended in an I/O error */
};

enum tally_redis_state {
	TALLY_REDIS_PENDING = 0,
	TALLY_REDIS_APPLIED,
	TALLY_REDIS_SKIPPED,
	TALLY_REDIS_MOVED,    /* slot owned elsewhere: redirect_node/slot set */
	TALLY_REDIS_ASK,      /* slot migrating: ask once with ASKING */
	TALLY_REDIS_NOSCRIPT, /* the node lost its script cache: resend with EVAL */
	TALLY_REDIS_RETRY,    /* TRYAGAIN, CLUSTERDOWN, LOADING...: retry later */
	TALLY_REDIS_FAILED,   /* error: see err */
};

struct tally_redis_call {
	uint32_t first, n; /* rows idx[first .. first + n) of the batch */
	int slot;          /* -1: standalone */
	uint32_t chunk;    /* chunk number within the slot */
	int node;          /* where it goes next, or where it was done */
	uint32_t gen;      /* the node's connection generation that answered */
	bool asking;       /* precede with ASKING (once) */
	enum tally_redis_state state;
	int err;           /* negative errno when FAILED or RETRY */
	char redirect[80]; /* host:port of a MOVED / ASK reply */
};

/* Everything a pipeline needs to know about the batch being written. */
struct tally_redis_job {
	const struct tally_batch *b;
	const uint32_t *idx;     /* row order: grouped by slot, batch order within */
	const char *prefix;
	const char *sha;         /* SHA1 of the script, hex */
	const char (*tags)[8];   /* per-slot hash tags (cluster), or NULL */
	bool with_seq;           /* the script also raises P seq:<appliance> */
	/* scratch for one call's arguments, grown as needed */
	char *buf;
	size_t buf_cap;
	const char **argv;
	size_t *argl;
	size_t argv_cap;
	struct tally_pctl pct;   /* percentiles the script stores (statsd_percentiles) */
	struct tally_sketch *sk; /* scratch: a row's sketch decoded, allocated on first use */
};

/* The room one sketch row's script argument can take (bins as text, or a
 * Redis HyperLogLog), besides its key. */
#define TALLY_REDIS_SKETCH_ARG (2 * TALLY_DDS_BINS * 40 + TALLY_PCTL_MAX * 48 + 12400)

/* The chunk script, and the seq script (raise P seq:<appliance> to ARGV[1]). */
extern const char tally_redis_script[];
extern const char tally_redis_seq_script[];

/* "host:port" -> host, port. 0 or -EINVAL. */
int tally_redis_parse_addr(const char *addr, char *host, size_t hostlen, int *port);

/* Connect (bounded by timeout_ms), set the call timeout, AUTH if password is
 * not empty, load the script (sha filled, 41 bytes). 0 or negative errno with err. */
int tally_redis_connect(struct tally_redis_node *n, const char *password, uint64_t timeout_ms,
			char *sha, char *err, size_t errlen);
void tally_redis_close(struct tally_redis_node *n);

/* Errno of a dead connection (after hiredis returned REDIS_ERR), node closed. */
int tally_redis_io_error(struct tally_redis_node *n, const char *what, char *err, size_t errlen);
/* Errno of an error reply's text ("WRONGPASS ...", "OOM ..."): transient or not. */
int tally_redis_reply_errno(const char *msg);

/* Key names (binary-safe), into out; returns the length (truncated at len). */
size_t tally_redis_row_key(char *out, size_t len, const char *prefix, int64_t window_ms,
			   int64_t win_start, const uint8_t *key, uint8_t key_len);
size_t tally_redis_marker_key(char *out, size_t len, const char *prefix, const char *app,
			      uint64_t seq, int slot, uint32_t chunk, const char *tag);
size_t tally_redis_seq_key(char *out, size_t len, const char *prefix, const char *app);

/* Cut rows idx[0..n) grouped by slot (slot_of[i] is the slot of idx[i], or NULL
 * for one slot -1) into calls of at most chunk rows. Returns the number of calls
 * written to calls (at most cap) or -ENOSPC. An empty batch is one empty call. */
long tally_redis_cut(const int *slot_of, uint32_t n, uint32_t chunk,
		     struct tally_redis_call *calls, size_t cap);

/* Send every call of calls[] to node n (already connected), TALLY_REDIS_WINDOW
 * at a time, and record each reply in its call. 0, or a negative errno if the
 * connection failed (calls without an answer stay PENDING, the node is closed). */
int tally_redis_pipeline(struct tally_redis_job *j, struct tally_redis_node *n,
			 struct tally_redis_call **calls, size_t ncalls, char *err, size_t errlen);

/* Bound every later call on n's connection to ms (at least 1). 0 or negative errno. */
int tally_redis_arm(struct tally_redis_node *n, uint64_t ms, char *err, size_t errlen);

/* WAIT (at most wait_ms, at least 1) for one replica when the node has any:
 * -EAGAIN if none acknowledged. Only proves the writes of this connection. */
int tally_redis_wait_replica(struct tally_redis_node *n, uint64_t wait_ms, char *err,
			     size_t errlen);

void tally_redis_job_free(struct tally_redis_job *j);

/* One command; its reply (caller frees; an error reply has err filled) or NULL
 * with *e a negative errno and the node closed. */
redisReply *tally_redis_command(struct tally_redis_node *n, const char *what, char *err,
				size_t errlen, int *e, int argc, const char **argv);
/* The batch's outcome from its calls: the first FAILED call's errno, else a
 * transient errno if any is not done, else APPLIED (any applied) or SKIPPED. */
int tally_redis_result(const struct tally_redis_call *calls, size_t n);
/* The integer at key (0 when absent), or a negative errno with err. */
/* A GET of a seq key's reply, freed: the seq, 0 if none, or -errno with err
 * naming the node and key. */
int64_t tally_redis_seq_reply(const struct tally_redis_node *n, redisReply *r, const char *key,
			      size_t keylen, char *err, size_t errlen);
int64_t tally_redis_get_seq(struct tally_redis_node *n, const char *key, size_t keylen,
			    char *err, size_t errlen);

/* Cluster hashing (sink_redis_cluster.c): CRC16-XMODEM, and the slot of a key
 * name after Redis's hash-tag rule ({...}: the first non-empty one decides). */
uint16_t tally_redis_crc16(const void *buf, size_t len);
unsigned tally_redis_keyslot(const void *key, size_t len);
/* Fill tags[slot] with a short string whose slot is slot, for every slot. 0 or -ENOENT. */
int tally_redis_slot_tags(char (*tags)[8]);

struct tally_gauges;
/*
 * The gauge state at a restart from one node: SCAN for P c:<window_ms>:* and
 * put each gauge key's last of its newest window into g (newest: the window
 * start seen per key, shared across the nodes of a cluster). 0 or a negative
 * errno with err.
 */
int tally_redis_load_gauges(struct tally_redis_node *n, const char *prefix, int64_t window_ms,
			    struct tally_gauges *g, struct tally_gauges *newest, char *err,
			    size_t errlen);

#endif
