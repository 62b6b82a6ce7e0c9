/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The parts both Redis sinks share (see redis_common.h for the key layout):
 * bounded hiredis connections, error classes, the chunk script and the
 * pipelined, windowed sending of chunk calls to one node.
 *
 * Why a Lua script: Redis runs a script atomically, so "is this chunk's marker
 * there? else apply the rows and set the marker" is one step, the same guarantee
 * as the SQL sinks' transaction, per chunk. On a skip the script rewrites the
 * marker with its own value: that puts a write in this connection's replication
 * stream, so a WAIT after it also covers a marker set by an earlier, lost
 * connection (a replica that acknowledges has the rows the marker stands for).
 *
 * Sums use HINCRBYFLOAT (a long double in Redis, printed with 17 digits): exact
 * for the integer totals tests compare, and as close as SQLite's double
 * otherwise. min and max are kept as the text sent, compared as numbers in Lua.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "gauge.h"
#include "redis_common.h"
#include "sink.h"
#include "sketch.h"

/*
 * A sketch argument is a kind letter, the 4-digit length of its key, the key,
 * then the body. H: a Redis dense HyperLogLog of the batch's registers, merged
 * by PFMERGE (through a scratch key of the same slot). D: "col q col q ...;"
 * then "z n p<i> n n<i> n ...": the bins are added with HINCRBY, the stores
 * collapsed as sketch.c does (a store spanning 1024 bins or more keeps the top
 * 1024, the lower ones folded into its lowest), and the percentiles read from
 * the merged bins exactly as tally_dds_quantile reads them (same rank rule,
 * same bin value, printed with 17 digits).
 */
const char tally_redis_script[] =
	"local G, INV = (1 + 0.01) / (1 - 0.01), 49.99833328888678\n"
	"local function bv(i) return 2 * math.exp(i / INV) / (G + 1) end\n"
	"local function hll(k, sk, body)\n"
	"  local tmp = sk .. ':tmp'\n"
	"  redis.call('SET', tmp, body)\n"
	"  redis.call('PFMERGE', sk, tmp)\n"
	"  redis.call('DEL', tmp)\n"
	"  redis.call('HSET', k, 'distinct', redis.call('PFCOUNT', sk), 'hll', sk)\n"
	"end\n"
	"local function collapse(sk, sign, s)\n"
	"  if #s == 0 or s[1][1] > s[#s][1] - 1024 then return s end\n"
	"  local lo, fold, keep = s[#s][1] - 1023, 0, {}\n"
	"  for _, b in ipairs(s) do\n"
	"    if b[1] < lo then fold = fold + b[2] redis.call('HDEL', sk, sign .. b[1])\n"
	"    else keep[#keep + 1] = b end\n"
	"  end\n"
	"  redis.call('HINCRBY', sk, sign .. lo, fold)\n"
	"  if keep[1] and keep[1][1] == lo then keep[1][2] = keep[1][2] + fold\n"
	"  else table.insert(keep, 1, {lo, fold}) end\n"
	"  return keep\n"
	"end\n"
	"local function quantile(neg, z, pos, n, q)\n"
	"  local rank, cum = q * (n - 1), 0\n"
	"  for j = #neg, 1, -1 do cum = cum + neg[j][2] if cum > rank then return -bv(neg[j][1]) end end\n"
	"  cum = cum + z if cum > rank then return 0 end\n"
	"  for j = 1, #pos do cum = cum + pos[j][2] if cum > rank then return bv(pos[j][1]) end end\n"
	"  if #pos > 0 then return bv(pos[#pos][1]) end\n"
	"  return nil\n"
	"end\n"
	"local function dds(k, sk, body)\n"
	"  local spec, bins = string.match(body, '^(.-);(.*)$')\n"
	"  for f, c in string.gmatch(bins, '(%S+) (%S+)') do redis.call('HINCRBY', sk, f, c) end\n"
	"  local h, z, st = redis.call('HGETALL', sk), 0, {p = {}, n = {}}\n"
	"  for j = 1, #h, 2 do\n"
	"    if h[j] == 'z' then z = tonumber(h[j + 1]) else\n"
	"      local s = st[string.sub(h[j], 1, 1)]\n"
	"      s[#s + 1] = {tonumber(string.sub(h[j], 2)), tonumber(h[j + 1])} end\n"
	"  end\n"
	"  local n = z\n"
	"  for _, sign in ipairs({'p', 'n'}) do\n"
	"    table.sort(st[sign], function(u, v) return u[1] < v[1] end)\n"
	"    st[sign] = collapse(sk, sign, st[sign])\n"
	"    for _, b in ipairs(st[sign]) do n = n + b[2] end\n"
	"  end\n"
	"  local out = {'dds', sk}\n"
	"  for col, q in string.gmatch(spec, '(%S+) (%S+)') do\n"
	"    local v = n > 0 and quantile(st.n, z, st.p, n, tonumber(q))\n"
	"    if v then out[#out + 1] = col out[#out + 1] = string.format('%.17g', v) end\n"
	"  end\n"
	"  redis.call('HSET', k, unpack(out))\n"
	"end\n"
	"local function sketch(k, x)\n"
	"  local kl = tonumber(string.sub(x, 2, 5))\n"
	"  local sk, body = string.sub(x, 6, 5 + kl), string.sub(x, 6 + kl)\n"
	"  if string.sub(x, 1, 1) == 'H' then hll(k, sk, body) else dds(k, sk, body) end\n"
	"end\n"
	"local m = redis.call('GET', KEYS[1])\n"
	"if m then redis.call('SET', KEYS[1], m) return 0 end\n"
	"local k0 = 1 + tonumber(ARGV[1])\n"
	"for i = 1, #KEYS - k0 do\n"
	"  local k, a = KEYS[k0 + i], 3 + (i - 1) * 6\n"
	"  redis.call('HINCRBY', k, 'count', ARGV[a + 1])\n"
	"  redis.call('HINCRBYFLOAT', k, 'sum', ARGV[a + 2])\n"
	"  local mm = redis.call('HMGET', k, 'min', 'max')\n"
	"  if not mm[1] or tonumber(ARGV[a + 3]) < tonumber(mm[1]) then\n"
	"    redis.call('HSET', k, 'min', ARGV[a + 3]) end\n"
	"  if not mm[2] or tonumber(ARGV[a + 4]) > tonumber(mm[2]) then\n"
	"    redis.call('HSET', k, 'max', ARGV[a + 4]) end\n"
	"  redis.call('HSET', k, 'last', ARGV[a + 5])\n"
	"  if #ARGV[a + 6] > 0 then sketch(k, ARGV[a + 6]) end\n"
	"end\n"
	"redis.call('SET', KEYS[1], ARGV[3])\n"
	"if ARGV[1] == '1' then\n"
	"  local s = redis.call('GET', KEYS[2])\n"
	"  if not s or tonumber(s) < tonumber(ARGV[2]) then redis.call('SET', KEYS[2], ARGV[2]) end\n"
	"end\n"
	"return 1\n";

const char tally_redis_seq_script[] =
	"local s = redis.call('GET', KEYS[1])\n"
	"if not s or tonumber(s) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end\n"
	"return 1\n";

int tally_redis_parse_addr(const char *addr, char *host, size_t hostlen, int *port)
{
	const char *colon = strrchr(addr, ':');
	char *end;
	long p;

	if (colon == NULL || colon == addr || (size_t)(colon - addr) >= hostlen)
		return -EINVAL;
	p = strtol(colon + 1, &end, 10);
	if (*end != '\0' || p < 1 || p > 65535)
		return -EINVAL;
	snprintf(host, hostlen, "%.*s", (int)(colon - addr), addr);
	*port = (int)p;
	return 0;
}

static struct timeval tv_of(uint64_t ms)
{
	return (struct timeval){.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
}

int tally_redis_io_error(struct tally_redis_node *n, const char *what, char *err, size_t errlen)
{
	int e = errno, code = n->c != NULL ? n->c->err : REDIS_ERR_OTHER;

	if (code == REDIS_ERR_EOF)
		e = ECONNRESET;
	else if (code == REDIS_ERR_PROTOCOL)
		e = EPROTO;
	else if (code == REDIS_ERR_OOM)
		e = ENOMEM;
	else if (e == EAGAIN || e == EWOULDBLOCK || e == EINPROGRESS)
		e = ETIMEDOUT;
	else if (code == REDIS_ERR_OTHER)
		e = EHOSTUNREACH; /* name resolution and the like */
	else if (e == 0 || !tally_sink_transient(-e))
		e = EIO;
	snprintf(err, errlen, "redis %s:%d: %s: %s", n->host, n->port, what,
		 n->c != NULL && n->c->errstr[0] ? n->c->errstr : "connection failed");
	if (e == ETIMEDOUT)
		snprintf(err + strlen(err), errlen - strlen(err), " (timed out)");
	tally_redis_close(n);
	n->bad = true;
	return -e;
}

static bool starts(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

int tally_redis_reply_errno(const char *msg)
{
	if (starts(msg, "NOAUTH") || starts(msg, "WRONGPASS") || starts(msg, "NOPERM") ||
	    strstr(msg, "password") != NULL || strstr(msg, "AUTH") != NULL)
		return -EACCES;
	if (starts(msg, "OOM"))
		return -ENOSPC;
	if (starts(msg, "TRYAGAIN") || starts(msg, "CLUSTERDOWN") || starts(msg, "LOADING") ||
	    starts(msg, "BUSY") || starts(msg, "MASTERDOWN") || starts(msg, "READONLY") ||
	    starts(msg, "MOVED") || starts(msg, "ASK") || starts(msg, "NOSCRIPT"))
		return -EAGAIN;
	return -EINVAL; /* WRONGTYPE, CROSSSLOT, script errors: retrying cannot help */
}

void tally_redis_close(struct tally_redis_node *n)
{
	if (n->c != NULL)
		redisFree(n->c);
	n->c = NULL;
	n->script_loaded = false;
}

redisReply *tally_redis_command(struct tally_redis_node *n, const char *what, char *err,
				size_t errlen, int *e, int argc, const char **argv)
{
	redisReply *r = redisCommandArgv(n->c, argc, argv, NULL);

	if (r == NULL) {
		*e = tally_redis_io_error(n, what, err, errlen);
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR)
		snprintf(err, errlen, "redis %s:%d: %s refused: %.160s", n->host, n->port, what,
			 r->str);
	return r;
}

static int auth_and_load(struct tally_redis_node *n, const char *password, char *sha,
			 char *err, size_t errlen)
{
	const char *load[] = {"SCRIPT", "LOAD", tally_redis_script};
	redisReply *r;
	int e = 0;

	if (password != NULL && password[0] != '\0') {
		const char *auth[] = {"AUTH", password};

		if ((r = tally_redis_command(n, "AUTH", err, errlen, &e, 2, auth)) == NULL)
			return e;
		e = r->type == REDIS_REPLY_ERROR ? -EACCES : 0;
		freeReplyObject(r);
		if (e)
			return e;
	}
	if ((r = tally_redis_command(n, "SCRIPT LOAD", err, errlen, &e, 3, load)) == NULL)
		return e;
	if (r->type == REDIS_REPLY_STRING && r->len == 40)
		memcpy(sha, r->str, 41);
	else
		e = r->type == REDIS_REPLY_ERROR ? tally_redis_reply_errno(r->str) : -EPROTO;
	freeReplyObject(r);
	n->script_loaded = e == 0;
	return e;
}

int tally_redis_connect(struct tally_redis_node *n, const char *password, uint64_t timeout_ms,
			char *sha, char *err, size_t errlen)
{
	int e;

	tally_redis_close(n);
	errno = 0;
	n->c = redisConnectWithTimeout(n->host, n->port, tv_of(timeout_ms));
	if (n->c == NULL || n->c->err)
		return tally_redis_io_error(n, "connect", err, errlen);
	n->gen++;
	if (redisSetTimeout(n->c, tv_of(timeout_ms)) != REDIS_OK)
		return tally_redis_io_error(n, "set timeout", err, errlen);
	e = auth_and_load(n, password, sha, err, errlen);
	if (e < 0 && n->c != NULL)
		tally_redis_close(n);
	return e;
}

size_t tally_redis_row_key(char *out, size_t len, const char *prefix, int64_t window_ms,
			   int64_t win_start, const uint8_t *key, uint8_t key_len)
{
	int h = snprintf(out, len, "%sc:%lld:%lld:", prefix, (long long)window_ms,
			 (long long)win_start);
	size_t n = (size_t)h < len ? (size_t)h : len;
	size_t k = key_len < len - n ? key_len : len - n;

	memcpy(out + n, key, k);
	return n + k;
}

size_t tally_redis_marker_key(char *out, size_t len, const char *prefix, const char *app,
			      uint64_t seq, int slot, uint32_t chunk, const char *tag)
{
	int n;

	if (slot < 0)
		n = snprintf(out, len, "%sb:%s:%llu:%u", prefix, app, (unsigned long long)seq, chunk);
	else
		n = snprintf(out, len, "%sb:%s:%llu:%d:%u:{%s}", prefix, app,
			     (unsigned long long)seq, slot, chunk, tag);
	return (size_t)n < len ? (size_t)n : len - 1;
}

size_t tally_redis_seq_key(char *out, size_t len, const char *prefix, const char *app)
{
	int n = snprintf(out, len, "%sseq:%s", prefix, app);

	return (size_t)n < len ? (size_t)n : len - 1;
}

long tally_redis_cut(const int *slot_of, uint32_t n, uint32_t chunk,
		     struct tally_redis_call *calls, size_t cap)
{
	size_t nc = 0;
	uint32_t i = 0;

	if (n == 0) {
		if (cap == 0)
			return -ENOSPC;
		calls[0] = (struct tally_redis_call){.slot = slot_of != NULL ? 0 : -1};
		return 1;
	}
	while (i < n) {
		int slot = slot_of != NULL ? slot_of[i] : -1;
		uint32_t c = 0;

		while (i < n && (slot_of == NULL || slot_of[i] == slot)) {
			uint32_t end = i, lim = i + chunk < n ? i + chunk : n;

			while (end < lim && (slot_of == NULL || slot_of[end] == slot))
				end++;
			if (nc == cap)
				return -ENOSPC;
			calls[nc++] = (struct tally_redis_call){.first = i, .n = end - i,
								 .slot = slot, .chunk = c++};
			i = end;
		}
	}
	return (long)nc;
}

void tally_redis_job_free(struct tally_redis_job *j)
{
	free(j->sk);
	j->sk = NULL;
	free(j->buf);
	free(j->argv);
	free(j->argl);
	j->buf = NULL;
	j->argv = NULL;
	j->argl = NULL;
	j->buf_cap = j->argv_cap = 0;
}

static int job_reserve(struct tally_redis_job *j, size_t bytes, size_t args)
{
	if (bytes > j->buf_cap) {
		char *p = realloc(j->buf, bytes);

		if (p == NULL)
			return -ENOMEM;
		j->buf = p;
		j->buf_cap = bytes;
	}
	if (args > j->argv_cap) {
		const char **a = realloc(j->argv, args * sizeof(*a));
		size_t *l = a != NULL ? realloc(j->argl, args * sizeof(*l)) : NULL;

		if (a != NULL)
			j->argv = a;
		if (l == NULL)
			return -ENOMEM;
		j->argl = l;
		j->argv_cap = args;
	}
	return 0;
}

/* Append one argument of at most room bytes written by the caller at *pos. */
static void arg(struct tally_redis_job *j, size_t *argc, size_t *pos, size_t len)
{
	j->argv[*argc] = j->buf + *pos;
	j->argl[(*argc)++] = len;
	*pos += len;
}

static void fmt_arg(struct tally_redis_job *j, size_t *argc, size_t *pos, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void fmt_arg(struct tally_redis_job *j, size_t *argc, size_t *pos, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(j->buf + *pos, 40, fmt, ap);
	va_end(ap);
	arg(j, argc, pos, (size_t)n < 40 ? (size_t)n : 39);
}

/* A sketch's key: P <letter><T>:<window_ms>:<window_start_ms>:<key> (redis_common.h). */
static size_t side_key(char *out, const struct tally_redis_job *j,
		       const struct tally_redis_call *c, const struct tally_batch *b,
		       const struct tally_batch_row *r, char letter)
{
	int n = sprintf(out, "%s%c%s%s%s:%lld:%lld:", j->prefix, letter, c->slot >= 0 ? "{" : "",
			c->slot >= 0 ? j->tags[c->slot] : "", c->slot >= 0 ? "}" : "",
			(long long)b->window_ms, (long long)r->win_start);

	memcpy(out + n, tally_batch_key(b, r), r->key_len);
	return (size_t)n + r->key_len;
}

/* The registers as a Redis dense HyperLogLog: "HYLL", encoding 0, the cached
 * count marked stale, 16384 6-bit registers (p = 14 as Redis's; our ranks are
 * at most 51 as Redis's are). Redis's PFCOUNT is Ertl's estimator too. */
static size_t hll_dense(const struct tally_sketch *sk, uint8_t *out)
{
	uint8_t *reg = out + 16;

	memset(out, 0, 16 + TALLY_HLL_M * 6 / 8 + 1);
	memcpy(out, "HYLL", 4);
	out[15] = 0x80;
	for (uint32_t i = 0; i < TALLY_HLL_M; i++) {
		unsigned v = sk->reg[i], fb = i * 6 & 7;

		reg[i * 6 / 8] |= (uint8_t)(v << fb);
		reg[i * 6 / 8 + 1] |= (uint8_t)(v >> (8 - fb));
	}
	return 16 + TALLY_HLL_M * 6 / 8;
}

/* "col q ...;" then the non-empty bins as "z n p<i> n n<i> n ". */
static size_t dds_text(const struct tally_redis_job *j, const struct tally_sketch *sk, char *out)
{
	const struct tally_dds_store *st[2] = {&sk->dds.pos, &sk->dds.neg};
	size_t n = 0;

	for (unsigned i = 0; i < j->pct.n; i++)
		n += (size_t)sprintf(out + n, "%s %.17g ", j->pct.col[i], j->pct.q[i]);
	out[n++] = ';';
	if (sk->dds.zero != 0)
		n += (size_t)sprintf(out + n, "z %llu ", (unsigned long long)sk->dds.zero);
	for (int s = 0; s < 2; s++)
		for (int32_t i = st[s]->lo; i <= st[s]->hi; i++) {
			uint64_t v = st[s]->bins[(uint32_t)i % TALLY_DDS_BINS];

			if (v != 0)
				n += (size_t)sprintf(out + n, "%c%d %llu ", s == 0 ? 'p' : 'n', i,
						     (unsigned long long)v);
		}
	return n;
}

/* A row's sketch as the script's argument at out (empty: none). */
static size_t sketch_arg(struct tally_redis_job *j, const struct tally_redis_call *c,
			 const struct tally_batch *b, const struct tally_batch_row *r, char *out)
{
	char len[16];
	size_t kl, n;

	if (r->blob_len == 0 || tally_sketch_decode(j->sk, tally_batch_blob(b, r), r->blob_len) != 0)
		return 0;
	kl = side_key(out + 5, j, c, b, r, j->sk->kind == TALLY_SK_HLL ? 'h' : 'q');
	snprintf(len, sizeof(len), "%c%04zu", j->sk->kind == TALLY_SK_HLL ? 'H' : 'D', kl);
	memcpy(out, len, 5);
	n = 5 + kl;
	if (j->sk->kind == TALLY_SK_HLL)
		return n + hll_dense(j->sk, (uint8_t *)out + n);
	return n + dds_text(j, j->sk, out + n);
}

/* Build the EVALSHA (or EVAL) of one call into j's argv; returns argc or -ENOMEM. */
static long build_call(struct tally_redis_job *j, const struct tally_redis_call *c, bool eval)
{
	const struct tally_batch *b = j->b;
	size_t plen = strlen(j->prefix), argc = 0, pos = 0;
	size_t args = 9 + (size_t)c->n * 7, nsk = 0;
	size_t bytes;

	for (uint32_t i = 0; i < c->n; i++)
		nsk += b->rows[j->idx[c->first + i]].blob_len != 0;
	bytes = 1024 + plen * 2 + (size_t)c->n * (plen + 300 + 5 * 40) +
		nsk * (plen + 320 + TALLY_REDIS_SKETCH_ARG);
	if (job_reserve(j, bytes, args) < 0 ||
	    (nsk != 0 && j->sk == NULL && (j->sk = malloc(sizeof(*j->sk))) == NULL))
		return -ENOMEM;
	j->argv[argc] = eval ? "EVAL" : "EVALSHA";
	j->argl[argc++] = eval ? 4 : 7;
	j->argv[argc] = eval ? tally_redis_script : j->sha;
	j->argl[argc] = strlen(j->argv[argc]);
	argc++;
	fmt_arg(j, &argc, &pos, "%u", 1 + (unsigned)j->with_seq + c->n);
	arg(j, &argc, &pos, tally_redis_marker_key(j->buf + pos, 400 + plen, j->prefix, b->appliance,
						   b->seq, c->slot, c->chunk,
						   c->slot >= 0 ? j->tags[c->slot] : NULL));
	if (j->with_seq)
		arg(j, &argc, &pos, tally_redis_seq_key(j->buf + pos, 300 + plen, j->prefix,
							b->appliance));
	for (uint32_t i = 0; i < c->n; i++) {
		const struct tally_batch_row *r = &b->rows[j->idx[c->first + i]];

		arg(j, &argc, &pos, tally_redis_row_key(j->buf + pos, plen + 300, j->prefix,
							b->window_ms, r->win_start,
							tally_batch_key(b, r), r->key_len));
	}
	fmt_arg(j, &argc, &pos, "%d", (int)j->with_seq);
	fmt_arg(j, &argc, &pos, "%llu", (unsigned long long)b->seq);
	fmt_arg(j, &argc, &pos, "%lld", (long long)b->now_ms);
	for (uint32_t i = 0; i < c->n; i++) {
		const struct tally_batch_row *r = &b->rows[j->idx[c->first + i]];

		fmt_arg(j, &argc, &pos, "%llu", (unsigned long long)r->count);
		fmt_arg(j, &argc, &pos, "%.17g", r->sum);
		fmt_arg(j, &argc, &pos, "%.17g", r->min);
		fmt_arg(j, &argc, &pos, "%.17g", r->max);
		fmt_arg(j, &argc, &pos, "%.17g", r->last);
		arg(j, &argc, &pos, sketch_arg(j, c, b, r, j->buf + pos));
	}
	return (long)argc;
}

/* "MOVED 3999 127.0.0.1:6381" -> the address. */
static void redirect_of(struct tally_redis_call *c, const char *msg)
{
	const char *sp = strrchr(msg, ' ');

	snprintf(c->redirect, sizeof(c->redirect), "%s", sp != NULL ? sp + 1 : "");
}

static void classify(struct tally_redis_call *c, const struct tally_redis_node *n,
		     const redisReply *r, char *err, size_t errlen)
{
	if (r->type == REDIS_REPLY_INTEGER) {
		c->state = r->integer ? TALLY_REDIS_APPLIED : TALLY_REDIS_SKIPPED;
		c->gen = n->gen;
		return;
	}
	if (r->type != REDIS_REPLY_ERROR) {
		c->state = TALLY_REDIS_FAILED;
		c->err = -EPROTO;
		snprintf(err, errlen, "redis %s:%d: unexpected reply type %d to the chunk script",
			 n->host, n->port, r->type);
		return;
	}
	c->err = tally_redis_reply_errno(r->str);
	if (starts(r->str, "MOVED "))
		c->state = TALLY_REDIS_MOVED;
	else if (starts(r->str, "ASK "))
		c->state = TALLY_REDIS_ASK;
	else if (starts(r->str, "NOSCRIPT"))
		c->state = TALLY_REDIS_NOSCRIPT;
	else
		c->state = c->err == -EAGAIN ? TALLY_REDIS_RETRY : TALLY_REDIS_FAILED;
	if (c->state == TALLY_REDIS_MOVED || c->state == TALLY_REDIS_ASK)
		redirect_of(c, r->str);
	if (c->state == TALLY_REDIS_FAILED || c->state == TALLY_REDIS_RETRY)
		snprintf(err, errlen, "redis %s:%d: batch script refused: %.160s", n->host,
			 n->port, r->str);
}

static int append_call(struct tally_redis_job *j, struct tally_redis_node *n,
		       struct tally_redis_call *c, char *err, size_t errlen)
{
	static const char *asking[] = {"ASKING"};
	long argc = build_call(j, c, c->state == TALLY_REDIS_NOSCRIPT || !n->script_loaded);

	if (argc < 0) {
		snprintf(err, errlen, "redis %s:%d: out of memory for a %u-row call", n->host,
			 n->port, c->n);
		return (int)argc;
	}
	if ((c->asking && redisAppendCommandArgv(n->c, 1, asking, NULL) != REDIS_OK) ||
	    redisAppendCommandArgv(n->c, (int)argc, j->argv, j->argl) != REDIS_OK)
		return tally_redis_io_error(n, "append", err, errlen);
	return 0;
}

/* Read the replies of calls[0..k), in order. */
static int read_window(struct tally_redis_node *n, struct tally_redis_call **calls, size_t k,
		       char *err, size_t errlen)
{
	for (size_t i = 0; i < k; i++) {
		struct tally_redis_call *c = calls[i];
		void *r;

		if (c->asking) {
			if (redisGetReply(n->c, &r) != REDIS_OK)
				return tally_redis_io_error(n, "ASKING", err, errlen);
			freeReplyObject(r);
			c->asking = false;
		}
		if (redisGetReply(n->c, &r) != REDIS_OK)
			return tally_redis_io_error(n, "batch script", err, errlen);
		classify(c, n, r, err, errlen);
		freeReplyObject(r);
	}
	return 0;
}

int tally_redis_pipeline(struct tally_redis_job *j, struct tally_redis_node *n,
			 struct tally_redis_call **calls, size_t ncalls, char *err, size_t errlen)
{
	for (size_t at = 0; at < ncalls; at += TALLY_REDIS_WINDOW) {
		size_t k = ncalls - at < TALLY_REDIS_WINDOW ? ncalls - at : TALLY_REDIS_WINDOW;
		int e;

		for (size_t i = 0; i < k; i++)
			if ((e = append_call(j, n, calls[at + i], err, errlen)) < 0)
				return e;
		if ((e = read_window(n, calls + at, k, err, errlen)) < 0)
			return e;
	}
	return 0;
}

int tally_redis_arm(struct tally_redis_node *n, uint64_t ms, char *err, size_t errlen)
{
	if (redisSetTimeout(n->c, tv_of(ms > 0 ? ms : 1)) != REDIS_OK)
		return tally_redis_io_error(n, "set timeout", err, errlen);
	return 0;
}

int tally_redis_wait_replica(struct tally_redis_node *n, uint64_t wait_ms, char *err,
			     size_t errlen)
{
	char ms[24];
	const char *argv[] = {"WAIT", "1", ms};
	redisReply *r;
	int e = 0;

	if (n->replicas <= 0)
		return 0;
	/* WAIT 1 0 would block for ever. */
	snprintf(ms, sizeof(ms), "%llu", (unsigned long long)(wait_ms > 0 ? wait_ms : 1));
	if ((r = tally_redis_command(n, "WAIT", err, errlen, &e, 3, argv)) == NULL)
		return e;
	if (r->type != REDIS_REPLY_INTEGER || r->integer < 1) {
		if (r->type != REDIS_REPLY_ERROR)
			snprintf(err, errlen, "redis %s:%d: no replica acknowledged the batch within "
				 "%s ms", n->host, n->port, ms);
		e = -EAGAIN;
	}
	freeReplyObject(r);
	return e;
}

int tally_redis_result(const struct tally_redis_call *calls, size_t n)
{
	int pending = 0;
	bool applied = false;

	for (size_t i = 0; i < n; i++) {
		if (calls[i].state == TALLY_REDIS_FAILED)
			return calls[i].err;
		if (calls[i].state == TALLY_REDIS_APPLIED)
			applied = true;
		else if (calls[i].state != TALLY_REDIS_SKIPPED && pending == 0)
			pending = calls[i].err < 0 ? calls[i].err : -EAGAIN;
	}
	if (pending < 0)
		return pending;
	return applied ? TALLY_SINK_APPLIED : TALLY_SINK_SKIPPED;
}

int64_t tally_redis_get_seq(struct tally_redis_node *n, const char *key, size_t keylen,
			    char *err, size_t errlen)
{
	const char *argv[] = {"GET", key};
	size_t argl[] = {3, keylen};
	redisReply *r = redisCommandArgv(n->c, 2, argv, argl);

	if (r == NULL)
		return tally_redis_io_error(n, "GET last seq", err, errlen);
	return tally_redis_seq_reply(n, r, key, keylen, err, errlen);
}

int64_t tally_redis_seq_reply(const struct tally_redis_node *n, redisReply *r, const char *key,
			      size_t keylen, char *err, size_t errlen)
{
	int64_t v;

	if (r->type == REDIS_REPLY_NIL) {
		v = 0;
	} else if (r->type == REDIS_REPLY_STRING) {
		v = strtoll(r->str, NULL, 10);
	} else {
		v = r->type == REDIS_REPLY_ERROR ? tally_redis_reply_errno(r->str) : -EPROTO;
		snprintf(err, errlen, "redis %.64s:%d: GET %.*s: %.96s", n->host, n->port,
			 (int)(keylen < 48 ? keylen : 48), key,
			 r->type == REDIS_REPLY_ERROR ? r->str : "not a string");
	}
	freeReplyObject(r);
	return v;
}

/* A binary-safe command on n; NULL with *e and err set (the connection dropped). */
static redisReply *command_len(struct tally_redis_node *n, const char *what, char *err,
			       size_t errlen, int *e, int argc, const char **argv,
			       const size_t *argl)
{
	redisReply *r = redisCommandArgv(n->c, argc, argv, argl);

	if (r == NULL)
		*e = tally_redis_io_error(n, what, err, errlen);
	else if (r->type == REDIS_REPLY_ERROR) {
		snprintf(err, errlen, "redis %s:%d: %s: %s", n->host, n->port, what, r->str);
		*e = tally_redis_reply_errno(r->str);
		freeReplyObject(r);
		r = NULL;
	}
	return r;
}

/* One scanned row key: its gauge's last into g when its window is the newest seen. */
static int gauge_row(struct tally_redis_node *n, const redisReply *k, size_t plen,
		     struct tally_gauges *g, struct tally_gauges *newest, char *err, size_t errlen)
{
	const char *p = k->str + plen, *end = k->str + k->len, *colon;
	const char *argv[] = {"HGET", k->str, "last"};
	size_t argl[] = {4, k->len, 4};
	double start, seen;
	redisReply *r;
	int e = 0;

	colon = memchr(p, ':', (size_t)(end - p)); /* <window_ms>: is behind p already */
	if (colon == NULL || end - colon - 1 < 1 || end - colon - 1 > 255 ||
	    !tally_gauge_key((const uint8_t *)colon + 1, (uint8_t)(end - colon - 1)))
		return 0;
	start = strtod(p, NULL);
	if (tally_gauges_get(newest, (const uint8_t *)colon + 1, (uint8_t)(end - colon - 1), &seen) &&
	    seen >= start)
		return 0;
	if ((r = command_len(n, "read a gauge", err, errlen, &e, 3, argv, argl)) == NULL)
		return e;
	if (r->type == REDIS_REPLY_STRING &&
	    (e = tally_gauges_set(g, (const uint8_t *)colon + 1, (uint8_t)(end - colon - 1),
				  strtod(r->str, NULL))) == 0)
		e = tally_gauges_set(newest, (const uint8_t *)colon + 1, (uint8_t)(end - colon - 1),
				     start);
	freeReplyObject(r);
	return e;
}

int tally_redis_load_gauges(struct tally_redis_node *n, const char *prefix, int64_t window_ms,
			    struct tally_gauges *g, struct tally_gauges *newest, char *err,
			    size_t errlen)
{
	char pat[256], cursor[32] = "0";
	size_t plen = (size_t)snprintf(pat, sizeof(pat), "%sc:%lld:", prefix, (long long)window_ms);
	size_t q = 0;
	int e = 0;

	/* The pattern: the prefix with SCAN's glob characters escaped, then '*'. */
	for (const char *c = prefix; *c != '\0' && q < sizeof(pat) - 40; c++) {
		if (strchr("*?[]\\", *c) != NULL)
			pat[q++] = '\\';
		pat[q++] = *c;
	}
	snprintf(pat + q, sizeof(pat) - q, "c:%lld:*", (long long)window_ms);
	do {
		const char *argv[] = {"SCAN", cursor, "MATCH", pat, "COUNT", "1000"};
		size_t argl[] = {4, strlen(cursor), 5, strlen(pat), 5, 4};
		redisReply *r = command_len(n, "scan for gauges", err, errlen, &e, 6, argv, argl);

		if (r == NULL)
			return e;
		if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    r->element[0]->type != REDIS_REPLY_STRING ||
		    r->element[1]->type != REDIS_REPLY_ARRAY) {
			freeReplyObject(r);
			snprintf(err, errlen, "redis %s:%d: unexpected SCAN reply", n->host, n->port);
			return -EPROTO;
		}
		snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
		for (size_t i = 0; e == 0 && i < r->element[1]->elements; i++)
			if (r->element[1]->element[i]->type == REDIS_REPLY_STRING &&
			    r->element[1]->element[i]->len > plen)
				e = gauge_row(n, r->element[1]->element[i], plen, g, newest, err, errlen);
		freeReplyObject(r);
	} while (e == 0 && strcmp(cursor, "0") != 0);
	return e;
}
