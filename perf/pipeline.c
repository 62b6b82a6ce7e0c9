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
 * --slice-seconds S prints worker 0's figures every S seconds of the run, each
 * with a speed probe of the machine run just then on the worker's CPU (a fixed
 * chain of multiplies, a pointer chase through 256 MiB, one through 8 MiB that
 * the last-level cache holds unless another tenant takes it): when the worker's
 * cycles per event rise over a long run, the probe says whether the machine
 * slowed down with it or Tally's own state did it.
 *
 * --workers N runs N workers on N lcores at once, set up as tallyd sets up its
 * workers: each has its own window tables, counters, mbufs and ack queue, and
 * all share one dedup table (written by CAS once there are two writers). Each
 * worker gets a frame pool of its own, generated with seed + i and sender_id +
 * i: other producers, other flows, disjoint event ids, and duplicates that stay
 * with the worker whose pool holds the original, which is what RSS on the
 * 5-tuple gives a queue (a producer's retry comes from its own flow). Dealing
 * every N-th datagram of one stream instead would send a duplicate to another
 * worker than its original half the time, which RSS does not do, and no
 * worker's input would be a prefix of a stream the generator can count, so the
 * check would be lost. Each worker is checked against its own pool; the rate
 * printed is the sum of the workers' rates, each over its own timed bursts.
 *
 *   tally-pipeline [traffic options] [--seconds S | --datagrams N] [--dedup-capacity N]
 *                  [--table-rows N] [--burst N] [--json FILE] [--acks] [--archive DIR]
 *                  [--workers N] [--dedup-cas] [-- EAL args]
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

#include <ck_pr.h>

#include "archiver.h"
#include "counters.h"
#include "gen_opts.h"
#include "gen_traffic.h"
#include "port_sizing.h"
#include "speed_probe.h"
#include "worker.h"

#define MAX_BURST 256
#define MAX_SAMPLES (1u << 24) /* bursts whose cycles per event are kept for the median */
#define MAX_WORKERS 16

struct bench {
	struct gen_opts o;
	double seconds;
	uint64_t max_datagrams; /* --datagrams: a fixed input (callgrind), not a time */
	uint64_t dedup_capacity, table_rows, sketch_rows, sketch_values;
	unsigned burst;
	const char *json;
	const char *archive;
	const char *pool_ops; /* --pool-ops: the mbuf pool's mempool driver, NULL = DPDK's default */
	bool acks; /* --acks: answer ACK_REQ datagrams on a net_null TX queue */
	unsigned workers; /* --workers: worker lcores sharing one dedup table */
	bool dedup_cas;   /* --dedup-cas: CAS even with one worker (what CAS alone costs) */
	double slice_seconds; /* --slice-seconds: worker 0's figures and a speed probe every S s */
};

/* One worker core's share of the run: its frames, mbufs and figures. Its own
 * cache lines: the other worker never reads them during the run. */
struct lane {
	struct gen_pool *p;
	struct rte_mempool *mp;
	uint64_t max_datagrams; /* this worker's part of --datagrams */
	uint64_t next, cycle;   /* the next frame of the pool to render */
	/* results */
	uint64_t datagrams, cycles, resets;
	uint64_t settled, settle_cycles; /* deferred sketch values folded as the flusher would */
	double wall;
	float *per_event; /* each burst's cycles per event, for the median */
	uint32_t nsamples;
	long preempted;   /* the worker thread's involuntary context switches */
	int err;
	/* --slice-seconds: where the current slice began */
	uint64_t slice_at, slice_cycles, slice_events;
	uint32_t slice_sample;
	unsigned nslices;
} __attribute__((aligned(64)));

enum { O_SECONDS = GEN_O_END, O_DEDUP, O_ROWS, O_BURST, O_JSON, O_ACKS, O_ARCHIVE, O_DGRAMS,
       O_POOL_OPS, O_SKETCH, O_SKETCH_VALUES, O_WORKERS, O_CAS, O_SLICE };

static const struct option long_opts[] = {
	GEN_TRAFFIC_LONG_OPTS,
	{"seconds", 1, 0, O_SECONDS}, {"dedup-capacity", 1, 0, O_DEDUP},
	{"table-rows", 1, 0, O_ROWS}, {"burst", 1, 0, O_BURST}, {"json", 1, 0, O_JSON}, {"acks", 0, 0, O_ACKS},
	{"archive", 1, 0, O_ARCHIVE}, {"datagrams", 1, 0, O_DGRAMS},
	{"pool-ops", 1, 0, O_POOL_OPS}, {"sketch-rows", 1, 0, O_SKETCH},
	{"sketch-values", 1, 0, O_SKETCH_VALUES},
	{"workers", 1, 0, O_WORKERS}, {"dedup-cas", 0, 0, O_CAS},
	{"slice-seconds", 1, 0, O_SLICE},
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
	"  --sketch-values N       deferred sketch values per table, as tallyd's\n"
	"                          sketch_values (4194304; 0: the worker folds them)\n"
	"  --burst N               frames per burst handed to the worker (32)\n"
	"  --archive DIR           hand datagrams to an archiver thread writing DIR\n"
	"  --pool-ops NAME         mempool driver of the mbufs (ring_mp_mc, ring_mt_rts...)\n"
	"  --workers N             N workers on N lcores, one shared dedup table, each\n"
	"                          with frames of its own (seed + i) (1)\n"
	"  --dedup-cas             write the dedup table by CAS even with one worker: the\n"
	"                          CAS's own share of what a second worker costs\n"
	"  --slice-seconds S       every S s of the run, worker 0's cycles per event\n"
	"                          then and a speed probe of the machine (a fixed\n"
	"                          multiply chain, pointer chases through 256 and 8 MiB):\n"
	"                          a \"slice\" line\n"
	"  --json FILE             write the results as JSON too\n"
	"EAL args default to: -l 1 (-l 0-N-1 with --workers N) --no-huge --no-pci -m 512\n"
	"prints datagrams, events, seconds (timed), cycles_per_event, events_per_sec,\n"
	"datagrams_per_sec, and check OK or the counters that differ from the generator's;\n"
	"with --workers N also each worker's workerI_* figures; events_per_sec is their sum\n");
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
	b->sketch_values = 4194304;
	b->burst = 32;
	b->workers = 1;
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
		case O_CAS: b->dedup_cas = true; r = 0; break;
		case O_SLICE: r = gen_num_f(optarg, 0.1, 1e6, &b->slice_seconds); break;
		case O_SKETCH: r = gen_num_u64(optarg, 1 << 20, &b->sketch_rows); break;
		case O_SKETCH_VALUES: r = gen_num_u64(optarg, 1 << 28, &b->sketch_values); break;
		case O_WORKERS: r = gen_num_u64(optarg, MAX_WORKERS, &x);
			b->workers = (unsigned)x;
			r = r || x == 0 ? -EINVAL : 0;
			break;
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

static int eal_init(int argc, char **argv, int dashdash, unsigned workers)
{
	static char lcores[16] = "1";
	static char *defaults[] = {"tally-pipeline", "-l", lcores, "--no-huge", "--no-pci", "-m",
				   "512", "--log-level=*:warning", "--no-telemetry", "--file-prefix", "tally-pipe"};
	char **av = defaults;
	int ac = (int)(sizeof(defaults) / sizeof(defaults[0]));

	/* one worker keeps its cpu 1 (the figures before --workers); N take 0..N-1 */
	if (workers > 1)
		snprintf(lcores, sizeof(lcores), "0-%u", workers - 1);
	if (dashdash < argc) {
		av = argv + dashdash;
		ac = argc - dashdash;
		av[0] = argv[0];
	}
	if (rte_eal_init(ac, av) < 0) {
		fprintf(stderr, "tally-pipeline: EAL init failed: %s\n", rte_strerror(rte_errno));
		return -EIO;
	}
	if (rte_lcore_count() < workers) {
		fprintf(stderr, "tally-pipeline: --workers %u needs %u lcores, EAL has %u (-l 0-%u)\n",
			workers, workers, rte_lcore_count(), workers - 1);
		return -EINVAL;
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
	struct bench *b;
	struct tally_shared sh;
	struct tally_params params;
	struct tally_worker w[MAX_WORKERS]; /* one array, as tallyd's: the archiver takes it */
	struct lane lane[MAX_WORKERS];
	struct tally_archiver ar;
	uint64_t tick_last; /* worker 0's, which moves the dedup generations */
	unsigned ready;     /* ck_pr: workers at the start line */
	struct speed_probe probe, probe_llc; /* --slice-seconds: DRAM, last-level cache */
};

/* The archiver on every CPU but the workers': on a worker's CPU it would be
 * timed as that worker's cost. With no CPU left it runs where it may. */
static void pin_off_workers(pthread_t th, unsigned workers)
{
	cpu_set_t s;
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned lc = rte_get_main_lcore();

	CPU_ZERO(&s);
	for (long c = 0; c < n; c++)
		CPU_SET((int)c, &s);
	for (unsigned i = 0; i < workers; i++, lc = rte_get_next_lcore(lc, 1, 0)) {
		rte_cpuset_t w = rte_lcore_cpuset(lc);

		for (long c = 0; c < n; c++)
			if (CPU_ISSET((int)c, &w))
				CPU_CLR((int)c, &s);
	}
	if (CPU_COUNT(&s) > 0)
		pthread_setaffinity_np(th, sizeof(s), &s);
	else
		fprintf(stderr, "tally-pipeline: no CPU without a worker: the archiver shares them\n");
}

static int rig_archive(struct rig *g, const struct bench *b)
{
	char err[512];
	int r = tally_archiver_start(&g->ar, b->archive, 0, 0, 600000, g->w, b->workers, err,
				     sizeof(err));

	if (r < 0) {
		fprintf(stderr, "tally-pipeline: %s\n", err);
		return r;
	}
	pin_off_workers(g->ar.th, b->workers);
	return 0;
}

/* --acks: ack_mode=accepted, acks built, allocated and sent on a net_null
 * port's TX queues (which free them), one queue a worker as in tallyd: the
 * worker's whole cost of answering. */
static int ack_port(struct rig *g, unsigned workers)
{
	struct rte_eth_conf conf = {0};
	uint16_t port;
	int r;

	r = rte_dev_probe("net_null_ack") != 0 ||
	    rte_eth_dev_get_port_by_name("net_null_ack", &port) != 0 ||
	    rte_eth_dev_configure(port, (uint16_t)workers, (uint16_t)workers, &conf) != 0;
	for (unsigned i = 0; r == 0 && i < workers; i++)
		r = rte_eth_rx_queue_setup(port, (uint16_t)i, 512, (unsigned)rte_socket_id(), NULL,
					   g->lane[i].mp) != 0 ||
		    rte_eth_tx_queue_setup(port, (uint16_t)i, 512, (unsigned)rte_socket_id(), NULL) != 0;
	if (r != 0 || rte_eth_dev_start(port) != 0) {
		fprintf(stderr, "tally-pipeline: --acks: cannot set up a net_null TX port\n");
		return -EIO;
	}
	g->params.ack_mode = TALLY_ACKM_ACCEPTED;
	for (unsigned i = 0; i < workers; i++) {
		g->w[i].txport = port;
		g->w[i].txq = (int)i;
		g->w[i].txpool = g->lane[i].mp;
	}
	return 0;
}

/* Worker i's frames: another producer (seed and sender_id + i), so its event
 * ids are disjoint from the other workers' (gen_traffic.c: a seed prefix). */
static int lane_setup(struct rig *g, const struct bench *b, unsigned i)
{
	struct lane *l = &g->lane[i];
	struct gen_opts o = b->o;
	char name[RTE_MEMPOOL_NAMESIZE];

	o.seed += i;
	o.sender_id += i;
	l->p = gen_pool_build(&o);
	if (l->p == NULL)
		return -ENOMEM;
	l->max_datagrams = b->max_datagrams / b->workers + (i < b->max_datagrams % b->workers);
	l->per_event = malloc(MAX_SAMPLES * sizeof(float));
	/* the archiver's ring holds mbufs too */
	/* with tallyd's per-lcore cache: without one every burst's free went to the
	 * pool's shared ring, contended by the archiver's frees */
	snprintf(name, sizeof(name), "pipe%u", i);
	l->mp = rte_pktmbuf_pool_create_by_ops(name, b->archive ? 4095 + TALLY_ARCHIVE_RING : 4095,
					       TALLY_MEMPOOL_CACHE, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
					       (int)rte_socket_id(), b->pool_ops);
	if (l->mp == NULL || l->per_event == NULL) {
		fprintf(stderr, "tally-pipeline: cannot allocate worker %u's mbufs\n", i);
		return -ENOMEM;
	}
	return tally_worker_init(&g->w[i], i, &g->sh, (uint32_t)b->table_rows) != 0 ? -ENOMEM : 0;
}

static int rig_setup(struct rig *g, struct bench *b)
{
	g->b = b;
	g->params = (struct tally_params){
		.ports = {b->o.proto == GEN_TLY1 ? b->o.dst_port : 0,
			  b->o.proto == GEN_STATSD ? b->o.dst_port : 0},
		.window_ms = (int64_t)b->o.window_ms, .lateness_ms = 0, .future_ms = 0};
	g->sh.params = &g->params;
	ck_epoch_init(&g->sh.epoch);
	tally_clock_init(&g->sh.clock, rte_get_tsc_hz(), rte_rdtsc(), wall_ms() * 1000000);
	g->sh.dedup = tally_dedup_create(b->dedup_capacity, 600000);
	if (g->sh.dedup == NULL) {
		fprintf(stderr, "tally-pipeline: cannot allocate the dedup table\n");
		return -ENOMEM;
	}
	/* CAS from two on, as tallyd */
	tally_dedup_set_writers(g->sh.dedup, b->dedup_cas ? 2 : b->workers);
	g->sh.sketch_rows = (uint32_t)b->sketch_rows;
	g->sh.sketch_values = (uint32_t)b->sketch_values;
	for (unsigned i = 0; i < b->workers; i++)
		if (lane_setup(g, b, i) != 0)
			return -ENOMEM;
	if (b->acks && ack_port(g, b->workers) != 0)
		return -EIO;
	return b->archive ? rig_archive(g, b) : 0;
}

/* The flusher's fold of the deferred sketch values, timed apart from the worker. */
static void settle_table(struct lane *l, struct tally_worker *w)
{
	uint64_t t0 = rte_rdtsc();

	l->settled += w->cur->npend;
	w->ctr.v[TALLY_C_STATSD_SKETCH_FULL] += tally_wtab_settle(w->cur);
	l->settle_cycles += rte_rdtsc() - t0;
}

/* What the flusher would do, outside the worker's cycles: a nearly full table
 * is settled and emptied. */
static void drain_table(struct lane *l, struct tally_worker *w)
{
	if (tally_wtab_near_full(w->cur)) {
		settle_table(l, w);
		tally_wtab_reset(w->cur);
		l->resets++;
	}
}

/*
 * Dedup generations, as tallyd's control loop moves them (untimed, by worker
 * 0 alone, one caller as tally_dedup_tick wants): often enough that no
 * generation takes much more than its capacity / 8 share, as tallyd's 10 ms
 * ticks do at up to 12M ids/s with a 1M-id horizon. Inserts are summed over
 * the workers, as tallyd's control loop sums them.
 */
static void tick_dedup(struct rig *g)
{
	uint64_t ins = 0;

	for (unsigned i = 0; i < g->b->workers; i++)
		ins += ck_pr_load_64(&g->w[i].ctr.v[TALLY_C_DEDUP_INSERTED]);
	if (ins - g->tick_last < g->b->dedup_capacity / 64)
		return;
	g->tick_last = ins;
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
static void sample(struct lane *l, uint64_t cycles, uint64_t events)
{
	if (events > 0 && l->nsamples < MAX_SAMPLES)
		l->per_event[l->nsamples++] = (float)cycles / (float)events;
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return (x > y) - (x < y);
}

/* The median of v[0..n), which it sorts; NAN for none. */
static double median_of(float *v, uint32_t n)
{
	if (n == 0)
		return NAN;
	qsort(v, n, sizeof(float), cmp_float);
	return v[n / 2];
}

static double median_per_event(struct lane *l)
{
	return median_of(l->per_event, l->nsamples);
}

/* The next n frames of the lane's pool into fresh mbufs (untimed). */
static int render(struct lane *l, struct rte_mbuf **m, unsigned n)
{
	const struct gen_pool *p = l->p;

	if (rte_pktmbuf_alloc_bulk(l->mp, m, n) != 0)
		return -ENOBUFS;
	for (unsigned k = 0; k < n; k++) {
		gen_frame_render(p, (uint32_t)l->next, l->cycle, rte_pktmbuf_mtod(m[k], uint8_t *));
		m[k]->data_len = (uint16_t)p->frames[l->next].len;
		m[k]->pkt_len = p->frames[l->next].len;
		if (++l->next == p->nframes) {
			l->next = 0;
			l->cycle++;
		}
	}
	return 0;
}

/* Until every worker is here: the timed runs start together, so that the
 * workers share the dedup table for the whole run, not for part of it. */
static void start_line(struct rig *g)
{
	ck_pr_inc_uint(&g->ready);
	while (ck_pr_load_uint(&g->ready) < g->b->workers)
		ck_pr_stall();
}

#define PROBE_BYTES (256u << 20)
#define PROBE_LLC_BYTES (8u << 20) /* a quarter of one Zen 4 CCD's L3: hits, unless shared */
#define PROBE_HOPS 50000

/* --slice-seconds: worker 0's figures since the last slice, then the machine's
 * speed just now on the same CPU (untimed: the worker's figures exclude it). */
static void slice_report(struct rig *g, struct lane *l, const struct tally_worker *w,
			 uint64_t t_start)
{
	static float burst[MAX_SAMPLES];
	uint64_t ev = w->ctr.v[TALLY_C_EVENTS_IN] - l->slice_events;
	uint32_t n = l->nsamples - l->slice_sample;
	uint64_t mul;
	double hop, llc, p50;

	memcpy(burst, l->per_event + l->slice_sample, n * sizeof(float));
	p50 = median_of(burst, n);
	mul = speed_probe_compute();
	hop = speed_probe_memory(&g->probe, PROBE_HOPS);
	speed_probe_memory(&g->probe_llc, PROBE_LLC_BYTES / 64); /* back into the cache */
	llc = speed_probe_memory(&g->probe_llc, PROBE_HOPS);
	printf("slice %u t %.1f events %llu cycles_per_event %.1f cycles_per_event_p50 %.1f "
	       "probe_mul_cycles %llu probe_hop_cycles %.1f probe_llc_hop_cycles %.1f\n",
	       l->nslices++, (double)(rte_rdtsc() - t_start) / (double)rte_get_tsc_hz(),
	       (unsigned long long)ev, ev ? (double)(l->cycles - l->slice_cycles) / (double)ev : NAN,
	       p50, (unsigned long long)mul, hop, llc);
	fflush(stdout);
	l->slice_at = rte_rdtsc();
	l->slice_cycles = l->cycles;
	l->slice_events = w->ctr.v[TALLY_C_EVENTS_IN];
	l->slice_sample = l->nsamples;
}

static void run_lane(struct rig *g, unsigned i)
{
	const struct bench *b = g->b;
	struct lane *l = &g->lane[i];
	struct tally_worker *w = &g->w[i];
	uint64_t hz = rte_get_tsc_hz(), budget = (uint64_t)(b->seconds * (double)hz), t_start;
	struct rte_mbuf *m[MAX_BURST];
	long csw = nivcsw();
	uint64_t slice = i == 0 ? (uint64_t)(b->slice_seconds * (double)hz) : 0;

	start_line(g);
	t_start = l->slice_at = rte_rdtsc();
	for (;;) {
		unsigned n = b->burst;
		uint64_t t0, ev0, dt;

		if (b->max_datagrams ? l->datagrams >= l->max_datagrams : l->cycles >= budget)
			break;
		if (b->max_datagrams && l->max_datagrams - l->datagrams < n)
			n = (unsigned)(l->max_datagrams - l->datagrams);
		if ((l->err = render(l, m, n)) != 0)
			break;
		ev0 = w->ctr.v[TALLY_C_EVENTS_IN];
		t0 = rte_rdtsc();
		tally_worker_burst(w, &g->params, m, (uint16_t)n,
				   tally_clock_ms(&g->sh.clock, t0, &w->clock_last));
		dt = rte_rdtsc() - t0;
		l->cycles += dt;
		sample(l, dt, w->ctr.v[TALLY_C_EVENTS_IN] - ev0);
		l->datagrams += n;
		drain_table(l, w);
		if (i == 0)
			tick_dedup(g);
		if (slice && t0 + dt - l->slice_at >= slice)
			slice_report(g, l, w, t_start);
	}
	l->wall = (double)(rte_rdtsc() - t_start) / (double)hz;
	l->preempted = nivcsw() - csw;
}

/* Every lcore's entry: lcore index i runs worker i; lcores beyond --workers idle. */
static int lane_main(void *arg)
{
	struct rig *g = arg;
	int i = rte_lcore_index((int)rte_lcore_id());

	if (i >= 0 && (unsigned)i < g->b->workers)
		run_lane(g, (unsigned)i);
	return 0;
}

static int run(struct rig *g)
{
	rte_eal_mp_remote_launch(lane_main, g, CALL_MAIN);
	rte_eal_mp_wait_lcore();
	for (unsigned i = 0; i < g->b->workers; i++)
		if (g->lane[i].err != 0)
			return g->lane[i].err;
	return 0;
}

/* A worker's counters against what its datagrams hold. */
static int check(const struct lane *l, const uint64_t *c, const char *who)
{
	static struct gen_sent s;
	int bad = 0;

	gen_sent_counts(l->p, l->datagrams, &s);
	s.by_reason[TALLY_C_EVENTS_ACCEPTED] = s.valid;
	s.by_reason[TALLY_C_RX_PACKETS] = s.datagrams;
	for (int i = 0; i < TALLY_C_MAX; i++) {
		bool checked = i == TALLY_C_EVENTS_ACCEPTED || i == TALLY_C_RX_PACKETS ||
			       s.by_reason[i] != 0 ||
			       (i >= TALLY_C_DROP_RUNT && i <= TALLY_C_DROP_UDP_PORT) ||
			       i == TALLY_C_DROP_TABLE_FULL || i == TALLY_C_DROP_LATE ||
			       i == TALLY_C_DROP_FUTURE || i == TALLY_C_DEDUP_EVICTED;

		if (checked && c[i] != s.by_reason[i]) {
			printf("check: %s%s is %llu, the datagrams hold %llu\n", who,
			       tally_counter_names[i], (unsigned long long)c[i],
			       (unsigned long long)s.by_reason[i]);
			bad = 1;
		}
	}
	return bad;
}

/* Every worker against its own pool; with one, as before --workers. */
static int check_all(const struct rig *g)
{
	char who[32] = "";
	int bad = 0;

	for (unsigned i = 0; i < g->b->workers; i++) {
		if (g->b->workers > 1)
			snprintf(who, sizeof(who), "worker %u: ", i);
		bad |= check(&g->lane[i], g->w[i].ctr.v, who);
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
 * spool carry them; and what folding the deferred sketch values cost the
 * flusher, per value.
 */
static void report_rows(struct lane *l, struct tally_worker *w)
{
	static uint8_t blob[TALLY_SKETCH_BLOB_MAX];
	const struct tally_wtab *t = w->cur;
	uint64_t n = 0, bytes = 0;

	settle_table(l, w);
	for (uint32_t i = 0; i < tally_wtab_rows(t); i++) {
		const struct tally_sketch *s = tally_wtab_sketch(t, t->used[i]);

		if (s != NULL)
			n++, bytes += tally_sketch_encode(s, blob);
	}
	printf("table_bytes_per_row %.1f\nsketch_slab_bytes %zu\nrows_at_end %u\n"
	       "sketch_rows_at_end %llu\nsketch_blob_bytes_per_row %.1f\nstatsd_sketch_full %llu\n"
	       "sketch_values_settled %llu\nsettle_cycles_per_value %.1f\n",
	       (double)(tally_wtab_bytes(t) - (size_t)t->nslabs * sizeof(struct tally_sketch) -
			(size_t)t->pend_cap * sizeof(*t->pend)) /
		       tally_wtab_capacity(t),
	       sizeof(struct tally_sketch), tally_wtab_rows(t), (unsigned long long)n,
	       n ? (double)bytes / (double)n : 0.0,
	       (unsigned long long)w->ctr.v[TALLY_C_STATSD_SKETCH_FULL],
	       (unsigned long long)l->settled,
	       l->settled ? (double)l->settle_cycles / (double)l->settled : 0.0);
}

/* The run's totals over the workers. The rate is the sum of each worker's own
 * (its events over its timed cycles): what N such cores take together. */
struct totals {
	uint64_t datagrams, events, cycles, resets;
	double secs, rate, drate;
	double rate_p50; /* the same from each worker's median burst: not moved by preemption */
	long preempted;
};

static struct totals sum_lanes(struct rig *g)
{
	double hz = (double)rte_get_tsc_hz();
	struct totals t = {0};

	for (unsigned i = 0; i < g->b->workers; i++) {
		struct lane *l = &g->lane[i];
		double secs = (double)l->cycles / hz;
		uint64_t ev = g->w[i].ctr.v[TALLY_C_EVENTS_IN];

		t.datagrams += l->datagrams;
		t.events += ev;
		t.cycles += l->cycles;
		t.resets += l->resets;
		t.preempted += l->preempted;
		t.secs = secs > t.secs ? secs : t.secs;
		t.rate += (double)ev / secs;
		t.rate_p50 += hz / median_per_event(&g->lane[i]);
		t.drate += (double)l->datagrams / secs;
	}
	return t;
}

/* --workers N: each worker's figures, and how much of its wall time was timed
 * (the rest is rendering frames, untimed: the workers' timed bursts overlap
 * about that much). */
static void report_lanes(struct rig *g)
{
	double hz = (double)rte_get_tsc_hz();

	printf("workers %u\n", g->b->workers);
	for (unsigned i = 0; g->b->workers > 1 && i < g->b->workers; i++) {
		struct lane *l = &g->lane[i];
		uint64_t ev = g->w[i].ctr.v[TALLY_C_EVENTS_IN];

		printf("worker%u_events %llu\nworker%u_events_per_sec %.0f\n"
		       "worker%u_cycles_per_event %.1f\nworker%u_cycles_per_event_p50 %.1f\n"
		       "worker%u_preempted %ld\nworker%u_timed_share %.2f\n",
		       i, (unsigned long long)ev, i, (double)ev / ((double)l->cycles / hz),
		       i, (double)l->cycles / (double)ev, i, median_per_event(l), i, l->preempted,
		       i, (double)l->cycles / hz / l->wall);
	}
}

static void report(struct rig *g, int bad)
{
	const struct bench *b = g->b;
	struct totals t = sum_lanes(g);
	FILE *j = b->json ? fopen(b->json, "w") : NULL;

	printf("datagrams %llu\nevents %llu\nseconds %.3f\ncycles_per_event %.1f\n"
	       "cycles_per_datagram %.1f\nevents_per_sec %.0f\ndatagrams_per_sec %.0f\n"
	       "table_resets %llu\nhuge_pages_mb %ld\ncycles_per_event_p50 %.1f\n"
	       "worker_preempted %ld\nevents_per_sec_p50 %.0f\n",
	       (unsigned long long)t.datagrams, (unsigned long long)t.events, t.secs,
	       (double)t.cycles / (double)t.events, (double)t.cycles / (double)t.datagrams,
	       t.rate, t.drate, (unsigned long long)t.resets, huge_mb(),
	       median_per_event(&g->lane[0]), t.preempted, t.rate_p50);
	report_lanes(g);
	printf("check %s\n", bad ? "FAIL" : "OK");
	if (j != NULL) {
		fprintf(j, "{\"datagrams\": %llu, \"events\": %llu, \"seconds\": %.3f, "
			"\"cycles_per_event\": %.2f, \"events_per_sec\": %.0f, \"workers\": %u, "
			"\"check\": %s}\n",
			(unsigned long long)t.datagrams, (unsigned long long)t.events, t.secs,
			(double)t.cycles / (double)t.events, t.rate, b->workers,
			bad ? "false" : "true");
		fclose(j);
	}
}

/* After the archiver drained its ring and wrote its last block. */
static void report_archive(struct rig *g)
{
	uint64_t v[TALLY_C_MAX] = {0}, full = 0, events = 0;

	tally_archiver_stop(&g->ar);
	tally_archiver_counters(&g->ar, v);
	for (unsigned i = 0; i < g->b->workers; i++) {
		full += g->w[i].ctr.v[TALLY_C_ARCHIVE_RING_FULL];
		events += g->w[i].ctr.v[TALLY_C_EVENTS_IN];
	}
	printf("archive_datagrams %llu\narchive_ring_full %llu\narchive_bytes %llu\n"
	       "archive_bytes_per_event %.2f\narchive_bytes_per_datagram %.1f\n",
	       (unsigned long long)v[TALLY_C_ARCHIVE_DATAGRAMS], (unsigned long long)full,
	       (unsigned long long)v[TALLY_C_ARCHIVE_BYTES],
	       (double)v[TALLY_C_ARCHIVE_BYTES] / (double)events,
	       (double)v[TALLY_C_ARCHIVE_BYTES] / (double)v[TALLY_C_ARCHIVE_DATAGRAMS]);
}

static void rig_free(struct rig *g)
{
	for (unsigned i = 0; i < g->b->workers; i++) {
		tally_worker_fini(&g->w[i]);
		free(g->lane[i].per_event);
		if (g->lane[i].p != NULL)
			gen_pool_free(g->lane[i].p);
	}
	tally_dedup_destroy(g->sh.dedup);
}

int main(int argc, char **argv)
{
	static struct bench b;
	static struct rig g;
	const char *e;
	int dashdash = gen_opts_end(argc, argv), bad;

	if (parse_opts(dashdash, argv, &b) != 0)
		return 2;
	e = gen_opts_finish(&b.o, UINT64_MAX);
	if (e != NULL) {
		fprintf(stderr, "tally-pipeline: %s\n", e);
		return 2;
	}
	if (eal_init(argc, argv, dashdash, b.workers) != 0 || rig_setup(&g, &b) != 0)
		return 1;
	if (b.slice_seconds > 0 && (speed_probe_init(&g.probe, PROBE_BYTES) != 0 ||
				    speed_probe_init(&g.probe_llc, PROBE_LLC_BYTES) != 0)) {
		fprintf(stderr, "tally-pipeline: no memory for the speed probe\n");
		return 1;
	}
	if (run(&g) != 0) {
		fprintf(stderr, "tally-pipeline: out of mbufs\n");
		return 1;
	}
	bad = check_all(&g);
	report(&g, bad);
	report_rows(&g.lane[0], &g.w[0]);
	if (b.archive)
		report_archive(&g);
	rig_free(&g);
	speed_probe_fini(&g.probe);
	speed_probe_fini(&g.probe_llc);
	rte_eal_cleanup();
	return bad;
}
