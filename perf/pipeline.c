/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tally-pipeline: the worker's whole per-packet path (frame parse, TLY1/StatsD
 * parse, time checks, dedup, window table) on tally-gen's frames, with no port
 * in between. Frames are rendered into real mbufs outside the timed region; only
 * tally_worker_burst() is timed, so the figure is what Tally's own code costs a
 * worker core, apart from packet I/O. perf/bench.py runs it next to the memif
 * runs so a gap can be split into "Tally's processing" and "packet I/O".
 *
 * With --archive DIR the worker also hands every datagram to a real archiver
 * thread (ctrlplane/archiver.c, pinned off the worker's CPU) writing DIR: the
 * timed figure then includes the hand-off (a 16-byte note per datagram, one
 * ring enqueue per burst), and the archive's bytes per event are printed.
 *
 * Besides the mean cycles per event over the timed bursts it prints the median
 * burst's (cycles_per_event_p50) and how often the worker thread was preempted:
 * on a shared VM the mean also holds the time other processes ran on the
 * worker's CPU.
 *
 * The run is checked: the worker's counters must equal what the generator says
 * the datagrams hold (accepted events, duplicates, every rejection reason).
 *
 *   tally-pipeline [traffic options] [--seconds S | --datagrams N] [--dedup-capacity N]
 *                  [--table-rows N] [--burst N] [--json FILE] [--acks] [--archive DIR]
 *                  [-- EAL args]
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>

#include <rte_dev.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "archiver.h"
#include "counters.h"
#include "gen_opts.h"
#include "gen_traffic.h"
#include "port_sizing.h"
#include "worker.h"

#define MAX_BURST 256
#define MAX_SAMPLES (1u << 22) /* bursts whose cycles per event are kept for the median */

struct bench {
	struct gen_opts o;
	double seconds;
	uint64_t max_datagrams; /* --datagrams: a fixed input (callgrind), not a time */
	uint64_t dedup_capacity, table_rows, sketch_rows;
	unsigned burst;
	const char *json;
	const char *archive;
	const char *pool_ops; /* --pool-ops: the mbuf pool's mempool driver, NULL = DPDK's default */
	bool acks; /* --acks: answer ACK_REQ datagrams on a net_null TX queue */
	/* results */
	uint64_t datagrams, cycles, resets;
	double wall;
	float *per_event; /* each burst's cycles per event, for the median */
	uint32_t nsamples;
	long preempted;   /* the worker thread's involuntary context switches */
};

enum { O_SECONDS = GEN_O_END, O_DEDUP, O_ROWS, O_BURST, O_JSON, O_ACKS, O_ARCHIVE, O_DGRAMS,
       O_POOL_OPS, O_SKETCH };

static const struct option long_opts[] = {
	GEN_TRAFFIC_LONG_OPTS,
	{"seconds", 1, 0, O_SECONDS}, {"dedup-capacity", 1, 0, O_DEDUP},
	{"table-rows", 1, 0, O_ROWS}, {"burst", 1, 0, O_BURST}, {"json", 1, 0, O_JSON}, {"acks", 0, 0, O_ACKS},
	{"archive", 1, 0, O_ARCHIVE}, {"datagrams", 1, 0, O_DGRAMS},
	{"pool-ops", 1, 0, O_POOL_OPS}, {"sketch-rows", 1, 0, O_SKETCH},
	{"help", 0, 0, 'h'}, {0, 0, 0, 0}};

static void usage(FILE *out)
{
	fprintf(out, "usage: tally-pipeline [options] [-- EAL args]\n");
	gen_opts_usage(out);
	fprintf(out,
	"run:\n"
	"  --seconds S             timed processing to run (5)\n"
	"  --datagrams N           process exactly N datagrams instead, however long it\n"
	"                          takes: a fixed input for callgrind/cachegrind\n"
	"  --dedup-capacity N      dedup horizon in ids, as tallyd's dedup_capacity (50000000)\n"
	"  --table-rows N          rows per window table, as tallyd's table_rows (1048576)\n"
	"  --sketch-rows N         sketch slabs per table, as tallyd's sketch_rows (256)\n"
	"  --burst N               frames per burst handed to the worker (32)\n"
	"  --archive DIR           hand datagrams to an archiver thread writing DIR\n"
	"  --pool-ops NAME         mempool driver of the mbufs (ring_mp_mc, ring_mt_rts...)\n"
	"  --json FILE             write the results as JSON too\n"
	"EAL args default to: -l 1 --no-huge --no-pci -m 512\n"
	"prints datagrams, events, seconds (timed), cycles_per_event, events_per_sec,\n"
	"datagrams_per_sec, and check OK or the counters that differ from the generator's\n");
}

static int parse_opts(int argc, char **argv, struct bench *b)
{
	uint64_t x;
	int c, li = 0;

	gen_opts_defaults(&b->o);
	b->seconds = 5;
	b->dedup_capacity = 50000000;
	b->table_rows = 1 << 20;
	b->sketch_rows = 256;
	b->burst = 32;
	while ((c = getopt_long(argc, argv, "h", long_opts, &li)) != -1) {
		int r = -EINVAL;

		if (c == 'h') {
			usage(stdout);
			exit(0);
		}
		if (c == '?' || c == ':')
			return -EINVAL;
		switch (c) {
		case O_SECONDS: r = gen_num_f(optarg, 0.01, 1e6, &b->seconds); break;
		case O_DGRAMS: r = gen_num_u64(optarg, UINT64_MAX, &b->max_datagrams);
			r = r || b->max_datagrams == 0 ? -EINVAL : 0;
			break;
		case O_DEDUP: r = gen_num_u64(optarg, 1ULL << 34, &b->dedup_capacity); break;
		case O_ROWS: r = gen_num_u64(optarg, INT32_MAX, &b->table_rows); break;
		case O_BURST: r = gen_num_u64(optarg, MAX_BURST, &x);
			b->burst = (unsigned)x;
			r = r || x == 0 ? -EINVAL : 0;
			break;
		case O_JSON: b->json = optarg; r = 0; break;
		case O_ARCHIVE: b->archive = optarg; r = 0; break;
		case O_POOL_OPS: b->pool_ops = optarg; r = 0; break;
		case O_ACKS: b->acks = true; r = 0; break;
		case O_SKETCH: r = gen_num_u64(optarg, 1 << 20, &b->sketch_rows); break;
		default: r = gen_opt_set(&b->o, c, optarg);
		}
		if (r != 0) {
			fprintf(stderr, "tally-pipeline: bad value \"%s\" for --%s\n", optarg,
				long_opts[li].name);
			return -EINVAL;
		}
	}
	return 0;
}

static int eal_init(int argc, char **argv, int dashdash)
{
	static char *defaults[] = {"tally-pipeline", "-l", "1", "--no-huge", "--no-pci", "-m",
				   "512", "--log-level=*:warning", "--no-telemetry", "--file-prefix", "tally-pipe"};
	char **av = defaults;
	int ac = (int)(sizeof(defaults) / sizeof(defaults[0]));

	if (dashdash < argc) {
		av = argv + dashdash;
		ac = argc - dashdash;
		av[0] = argv[0];
	}
	if (rte_eal_init(ac, av) < 0) {
		fprintf(stderr, "tally-pipeline: EAL init failed: %s\n", rte_strerror(rte_errno));
		return -EIO;
	}
	return 0;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct rig {
	struct tally_shared sh;
	struct tally_params params;
	struct tally_worker w;
	struct rte_mempool *mp;
	struct tally_archiver ar;
};

/* The archiver on every CPU but the worker's: on the worker's own CPU it would
 * be timed as the worker's cost. */
static void pin_off_worker(pthread_t th)
{
	cpu_set_t s;
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	CPU_ZERO(&s);
	for (long c = 0; c < n; c++)
		if (c != sched_getcpu())
			CPU_SET((int)c, &s);
	if (CPU_COUNT(&s) > 0)
		pthread_setaffinity_np(th, sizeof(s), &s);
}

static int rig_archive(struct rig *g, const struct bench *b)
{
	char err[512];
	int r = tally_archiver_start(&g->ar, b->archive, 0, 0, 600000, &g->w, 1, err,
				     sizeof(err));

	if (r < 0) {
		fprintf(stderr, "tally-pipeline: %s\n", err);
		return r;
	}
	pin_off_worker(g->ar.th);
	return 0;
}

/* --acks: ack_mode=accepted, acks built, allocated and sent on a net_null
 * port's TX queue (which frees them): the worker's whole cost of answering. */
static int ack_port(struct rig *g)
{
	struct rte_eth_conf conf = {0};
	uint16_t port;

	if (rte_dev_probe("net_null_ack") != 0 ||
	    rte_eth_dev_get_port_by_name("net_null_ack", &port) != 0 ||
	    rte_eth_dev_configure(port, 1, 1, &conf) != 0 ||
	    rte_eth_rx_queue_setup(port, 0, 512, (unsigned)rte_socket_id(), NULL, g->mp) != 0 ||
	    rte_eth_tx_queue_setup(port, 0, 512, (unsigned)rte_socket_id(), NULL) != 0 ||
	    rte_eth_dev_start(port) != 0) {
		fprintf(stderr, "tally-pipeline: --acks: cannot set up a net_null TX port\n");
		return -EIO;
	}
	g->params.ack_mode = TALLY_ACKM_ACCEPTED;
	g->w.txport = port;
	g->w.txq = 0;
	g->w.txpool = g->mp;
	return 0;
}

static int rig_setup(struct rig *g, const struct bench *b)
{
	g->params = (struct tally_params){
		.ports = {b->o.proto == GEN_TLY1 ? b->o.dst_port : 0,
			  b->o.proto == GEN_STATSD ? b->o.dst_port : 0},
		.window_ms = (int64_t)b->o.window_ms, .lateness_ms = 0, .future_ms = 0};
	g->sh.params = &g->params;
	ck_epoch_init(&g->sh.epoch);
	tally_clock_init(&g->sh.clock, rte_get_tsc_hz(), rte_rdtsc(), wall_ms() * 1000000);
	g->sh.dedup = tally_dedup_create(b->dedup_capacity, 600000);
	if (g->sh.dedup != NULL)
		tally_dedup_set_writers(g->sh.dedup, 1);
	/* the archiver's ring holds mbufs too */
	/* with tallyd's per-lcore cache: without one every burst's free went to the
	 * pool's shared ring, contended by the archiver's frees */
	g->mp = rte_pktmbuf_pool_create_by_ops("pipe", b->archive ? 4095 + TALLY_ARCHIVE_RING : 4095,
					       TALLY_MEMPOOL_CACHE, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
					       (int)rte_socket_id(), b->pool_ops);
	if (g->sh.dedup == NULL || g->mp == NULL) {
		fprintf(stderr, "tally-pipeline: cannot allocate the dedup table or mbufs\n");
		return -ENOMEM;
	}
	g->sh.sketch_rows = (uint32_t)b->sketch_rows;
	if (tally_worker_init(&g->w, 0, &g->sh, (uint32_t)b->table_rows) != 0)
		return -ENOMEM;
	if (b->acks && ack_port(g) != 0)
		return -EIO;
	return b->archive ? rig_archive(g, b) : 0;
}

/* What the flusher would do, untimed: a nearly full table is emptied. */
static void drain_table(struct bench *b, struct tally_worker *w)
{
	if (tally_wtab_near_full(w->cur)) {
		tally_wtab_reset(w->cur);
		b->resets++;
	}
}

/*
 * Dedup generations, as tallyd's control loop moves them (untimed): often
 * enough that no generation takes much more than its capacity / 8 share, as
 * tallyd's 10 ms ticks do at up to 12M ids/s with a 1M-id horizon.
 */
static void tick_dedup(struct bench *b, struct rig *g)
{
	static uint64_t last;
	uint64_t ins = g->w.ctr.v[TALLY_C_DEDUP_INSERTED];

	if (ins - last < b->dedup_capacity / 64)
		return;
	last = ins;
	tally_dedup_tick(g->sh.dedup, wall_ms(), ins, 0);
}

static long nivcsw(void)
{
	struct rusage ru;

	return getrusage(RUSAGE_THREAD, &ru) == 0 ? ru.ru_nivcsw : 0;
}

/* A burst's cycles per event, kept for the median: unlike the mean, the median
 * burst is not moved by the few bursts during which the worker was preempted
 * (a shared 2-vCPU VM lends the worker's CPU to other processes). */
static void sample(struct bench *b, uint64_t cycles, uint64_t events)
{
	if (events > 0 && b->nsamples < MAX_SAMPLES)
		b->per_event[b->nsamples++] = (float)cycles / (float)events;
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return (x > y) - (x < y);
}

static double median_per_event(struct bench *b)
{
	if (b->nsamples == 0)
		return NAN;
	qsort(b->per_event, b->nsamples, sizeof(float), cmp_float);
	return b->per_event[b->nsamples / 2];
}

static int run(struct bench *b, struct rig *g, const struct gen_pool *p)
{
	uint64_t hz = rte_get_tsc_hz(), budget = (uint64_t)(b->seconds * (double)hz);
	uint64_t next = 0, cycle = 0, t_start = rte_rdtsc();
	struct rte_mbuf *m[MAX_BURST];
	long csw = nivcsw();

	b->per_event = malloc(MAX_SAMPLES * sizeof(float));
	if (b->per_event == NULL)
		return -ENOMEM;
	for (;;) {
		unsigned n = b->burst;
		uint64_t t0, ev0, dt;

		if (b->max_datagrams ? b->datagrams >= b->max_datagrams : b->cycles >= budget)
			break;
		if (b->max_datagrams && b->max_datagrams - b->datagrams < n)
			n = (unsigned)(b->max_datagrams - b->datagrams);
		if (rte_pktmbuf_alloc_bulk(g->mp, m, n) != 0)
			return -ENOBUFS;
		for (unsigned k = 0; k < n; k++) {
			gen_frame_render(p, (uint32_t)next, cycle, rte_pktmbuf_mtod(m[k], uint8_t *));
			m[k]->data_len = (uint16_t)p->frames[next].len;
			m[k]->pkt_len = p->frames[next].len;
			if (++next == p->nframes) {
				next = 0;
				cycle++;
			}
		}
		ev0 = g->w.ctr.v[TALLY_C_EVENTS_IN];
		t0 = rte_rdtsc();
		tally_worker_burst(&g->w, &g->params, m, (uint16_t)n,
				   tally_clock_ms(&g->sh.clock, t0, &g->w.clock_last));
		dt = rte_rdtsc() - t0;
		b->cycles += dt;
		sample(b, dt, g->w.ctr.v[TALLY_C_EVENTS_IN] - ev0);
		b->datagrams += n;
		drain_table(b, &g->w);
		tick_dedup(b, g);
	}
	b->wall = (double)(rte_rdtsc() - t_start) / (double)hz;
	b->preempted = nivcsw() - csw;
	return 0;
}

/* The worker's counters against what the datagrams hold. */
static int check(const struct bench *b, const struct gen_pool *p, const uint64_t *c)
{
	static struct gen_sent s;
	int bad = 0;

	gen_sent_counts(p, b->datagrams, &s);
	s.by_reason[TALLY_C_EVENTS_ACCEPTED] = s.valid;
	s.by_reason[TALLY_C_RX_PACKETS] = s.datagrams;
	for (int i = 0; i < TALLY_C_MAX; i++) {
		bool checked = i == TALLY_C_EVENTS_ACCEPTED || i == TALLY_C_RX_PACKETS ||
			       s.by_reason[i] != 0 ||
			       (i >= TALLY_C_DROP_RUNT && i <= TALLY_C_DROP_UDP_PORT) ||
			       i == TALLY_C_DROP_TABLE_FULL || i == TALLY_C_DROP_LATE ||
			       i == TALLY_C_DROP_FUTURE || i == TALLY_C_DEDUP_EVICTED;

		if (checked && c[i] != s.by_reason[i]) {
			printf("check: %s is %llu, the datagrams hold %llu\n", tally_counter_names[i],
			       (unsigned long long)c[i], (unsigned long long)s.by_reason[i]);
			bad = 1;
		}
	}
	return bad;
}

/* Transparent huge pages the process holds: tables on 4 KiB pages run slower. */
static long huge_mb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/smaps_rollup", "r");

	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	if (f != NULL)
		fclose(f);
	return kb < 0 ? -1 : kb / 1024;
}

/*
 * What rows cost in the table that is current at the end: table bytes per row
 * of capacity (rows, aux, arena), and the sketch rows' blobs as batches and the
 * spool carry them.
 */
static void report_rows(const struct tally_worker *w)
{
	static uint8_t blob[TALLY_SKETCH_BLOB_MAX];
	const struct tally_wtab *t = w->cur;
	uint64_t n = 0, bytes = 0;

	for (uint32_t i = 0; i < tally_wtab_rows(t); i++) {
		const struct tally_sketch *s = tally_wtab_sketch(t, t->used[i]);

		if (s != NULL)
			n++, bytes += tally_sketch_encode(s, blob);
	}
	printf("table_bytes_per_row %.1f\nsketch_slab_bytes %zu\nrows_at_end %u\n"
	       "sketch_rows_at_end %llu\nsketch_blob_bytes_per_row %.1f\nstatsd_sketch_full %llu\n",
	       (double)(tally_wtab_bytes(t) - (size_t)t->nslabs * sizeof(struct tally_sketch)) /
		       tally_wtab_capacity(t),
	       sizeof(struct tally_sketch), tally_wtab_rows(t), (unsigned long long)n,
	       n ? (double)bytes / (double)n : 0.0,
	       (unsigned long long)w->ctr.v[TALLY_C_STATSD_SKETCH_FULL]);
}

static void report(struct bench *b, const uint64_t *c, int bad)
{
	double secs = (double)b->cycles / (double)rte_get_tsc_hz();
	uint64_t events = c[TALLY_C_EVENTS_IN];
	FILE *j = b->json ? fopen(b->json, "w") : NULL;

	printf("datagrams %llu\nevents %llu\nseconds %.3f\ncycles_per_event %.1f\n"
	       "cycles_per_datagram %.1f\nevents_per_sec %.0f\ndatagrams_per_sec %.0f\n"
	       "table_resets %llu\nhuge_pages_mb %ld\ncycles_per_event_p50 %.1f\n"
	       "worker_preempted %ld\ncheck %s\n",
	       (unsigned long long)b->datagrams, (unsigned long long)events, secs,
	       (double)b->cycles / (double)events, (double)b->cycles / (double)b->datagrams,
	       (double)events / secs, (double)b->datagrams / secs,
	       (unsigned long long)b->resets, huge_mb(), median_per_event(b), b->preempted,
	       bad ? "FAIL" : "OK");
	if (j != NULL) {
		fprintf(j, "{\"datagrams\": %llu, \"events\": %llu, \"seconds\": %.3f, "
			"\"cycles_per_event\": %.2f, \"events_per_sec\": %.0f, \"check\": %s}\n",
			(unsigned long long)b->datagrams, (unsigned long long)events, secs,
			(double)b->cycles / (double)events, (double)events / secs,
			bad ? "false" : "true");
		fclose(j);
	}
}

/* After the archiver drained its ring and wrote its last block. */
static void report_archive(struct rig *g, const uint64_t *c)
{
	uint64_t v[TALLY_C_MAX] = {0};

	tally_archiver_stop(&g->ar);
	tally_archiver_counters(&g->ar, v);
	printf("archive_datagrams %llu\narchive_ring_full %llu\narchive_bytes %llu\n"
	       "archive_bytes_per_event %.2f\narchive_bytes_per_datagram %.1f\n",
	       (unsigned long long)v[TALLY_C_ARCHIVE_DATAGRAMS],
	       (unsigned long long)c[TALLY_C_ARCHIVE_RING_FULL],
	       (unsigned long long)v[TALLY_C_ARCHIVE_BYTES],
	       (double)v[TALLY_C_ARCHIVE_BYTES] / (double)c[TALLY_C_EVENTS_IN],
	       (double)v[TALLY_C_ARCHIVE_BYTES] / (double)v[TALLY_C_ARCHIVE_DATAGRAMS]);
}

int main(int argc, char **argv)
{
	static struct bench b;
	static struct rig g;
	struct gen_pool *p;
	const char *e;
	int dashdash = gen_opts_end(argc, argv), bad;

	if (parse_opts(dashdash, argv, &b) != 0)
		return 2;
	e = gen_opts_finish(&b.o, UINT64_MAX);
	if (e != NULL) {
		fprintf(stderr, "tally-pipeline: %s\n", e);
		return 2;
	}
	p = gen_pool_build(&b.o);
	if (p == NULL || eal_init(argc, argv, dashdash) != 0 || rig_setup(&g, &b) != 0)
		return 1;
	if (run(&b, &g, p) != 0) {
		fprintf(stderr, "tally-pipeline: out of mbufs\n");
		return 1;
	}
	bad = check(&b, p, g.w.ctr.v);
	report(&b, g.w.ctr.v, bad);
	report_rows(&g.w);
	if (b.archive)
		report_archive(&g, g.w.ctr.v);
	tally_worker_fini(&g.w);
	free(b.per_event);
	tally_dedup_destroy(g.sh.dedup);
	gen_pool_free(p);
	rte_eal_cleanup();
	return bad;
}
