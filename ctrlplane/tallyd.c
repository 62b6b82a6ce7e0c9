/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tallyd: the daemon. Reads the config (file, then command-line overrides),
 * starts the EAL, the port, one worker per worker lcore and the flusher thread,
 * then runs the control loop on the main lcore: control socket, dedup
 * generations, stop conditions. SIGINT/SIGTERM drain the workers and flush every
 * accepted event before exit; a second signal stops retrying a failing sink.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>

#include <ck_pr.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <systemd/sd-daemon.h>

#include "config.h"
#include "live.h"
#include "port.h"
#include "sink.h"
#include "sink_config.h"
#include "stats.h"
#include "tallyd.h"

/* Dedup tick. Dedup generations move on ticks, so a tick must come well
 * within one generation's insert budget (capacity / 8): at 2 ms, a 1M-id horizon
 * keeps its promise up to ~60M ids/s. */
#define DEDUP_TICK_MS 2
#define STOP_CHECK_MS 10
#define CTL_EXPIRE_MS 100

static volatile sig_atomic_t signals, hups;

static void on_signal(int sig)
{
	(void)sig;
	signals++;
}

/* SIGHUP: the stop-check timer re-reads the config (tally_live_reload_file). */
static void on_hup(int sig)
{
	(void)sig;
	hups++;
}

static uint64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: tallyd [-c FILE] [--KEY=VALUE ...] [-- EAL args]\n"
		"  -c, --config FILE   config file of key = value lines\n"
		"  --KEY=VALUE         override any config key (see --help-config)\n"
		"  --help-config       print every config key, default and range\n"
		"EAL args example: -l 0,1 --no-huge --no-pci --vdev=net_pcap0,rx_pcap=in.pcap\n"
		"Lcores: the main lcore runs control and flush; every other lcore is a worker.\n");
}

static int setup_params(struct tally_daemon *d, char *err, size_t errlen)
{
	struct tally_params *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return -ENOMEM;
	p->ports[0] = (uint16_t)d->cfg.tly1_port;
	p->ports[1] = (uint16_t)d->cfg.statsd_port;
	p->window_ms = (int64_t)d->cfg.window_ms;
	p->lateness_ms = d->cfg.lateness_ms;
	p->future_ms = d->cfg.future_ms;
	if (tally_config_mac_keys(d->cfg.mac_keys, p->mac.present, p->mac.key, err, errlen))
		return -EINVAL;
	d->sh.params = p;
	ck_epoch_init(&d->sh.epoch);
	ck_epoch_register(&d->sh.epoch, &d->ctl_rec, NULL);
	if (tally_live_rules_init(d, err, errlen) != 0)
		return -EINVAL;
	tally_clock_init(&d->sh.clock, rte_get_tsc_hz(), rte_rdtsc(), clock_ns(CLOCK_REALTIME));
	return 0;
}

/* Workers take the RX queues round robin: worker i polls queues i, i+n, ... */
static int setup_workers(struct tally_daemon *d, uint16_t nq, char *err, size_t errlen)
{
	unsigned i, w_lcore;
	int r;

	d->workers = aligned_alloc(64, sizeof(*d->workers) * d->nworkers);
	if (d->workers == NULL)
		return -ENOMEM;
	memset(d->workers, 0, sizeof(*d->workers) * d->nworkers);
	w_lcore = rte_get_next_lcore(-1, 1, 0);
	for (i = 0; i < d->nworkers; i++, w_lcore = rte_get_next_lcore(w_lcore, 1, 0)) {
		struct tally_worker *w = &d->workers[i];

		/* launch_workers gives worker i the same lcore: its tables go on its node. */
		tally_port_check_lcore(d->port, w_lcore, i, stderr);
		r = tally_worker_init_node(w, i, &d->sh, (uint32_t)d->cfg.table_rows,
					   (int)rte_lcore_to_socket_id(w_lcore));
		if (r < 0) {
			snprintf(err, errlen, "worker %u: cannot allocate %llu-row tables: %s", i,
				 (unsigned long long)d->cfg.table_rows, strerror(-r));
			return r;
		}
		w->port = d->port;
		for (uint16_t q = (uint16_t)i; q < nq; q = (uint16_t)(q + d->nworkers))
			w->queues[w->nqueues++] = q;
	}
	return 0;
}

static void launch_workers(struct tally_daemon *d)
{
	unsigned lcore, i = 0;

	RTE_LCORE_FOREACH_WORKER(lcore) {
		d->workers[i].lcore = lcore;
		rte_eal_remote_launch(tally_worker_main, &d->workers[i], lcore);
		i++;
	}
}

/* The pool on the port's socket (where the NIC writes frames), sized by the
 * formula of port_sizing.h; an explicit mbufs below it is refused at start. */
static int setup_pool(struct tally_daemon *d, uint16_t nq, char *err, size_t errlen)
{
	struct tally_pool_need need = {.lcores = d->nworkers, .burst = TALLY_BURST,
				       .cache = TALLY_MEMPOOL_CACHE};
	uint64_t needed, n;
	int r = tally_port_plan(d->port, nq, (uint16_t)d->cfg.rx_desc, &need, err, errlen);
	int socket = rte_eth_dev_socket_id(d->port);

	if (r < 0)
		return r;
	needed = tally_mbufs_needed(&need);
	n = d->cfg.mbufs ? d->cfg.mbufs : tally_mbufs_derived(&need);
	if (n < needed) {
		snprintf(err, errlen, "mbufs: %llu is too few: %llu RX queues x %llu descriptors + "
			 "%llu TX x %llu + %llu workers x (burst %llu + 1.5 x cache %llu) need at "
			 "least %llu (set mbufs = 0 to derive it)", (unsigned long long)n,
			 (unsigned long long)need.rx_queues, (unsigned long long)need.rx_desc,
			 (unsigned long long)need.tx_queues, (unsigned long long)need.tx_desc,
			 (unsigned long long)need.lcores, (unsigned long long)need.burst,
			 (unsigned long long)need.cache, (unsigned long long)needed);
		return -EINVAL;
	}
	if (socket < 0) /* a vdev: no NIC socket, so the first worker's */
		socket = (int)rte_lcore_to_socket_id(rte_get_next_lcore(-1, 1, 0));
	d->mp = rte_pktmbuf_pool_create("tally_rx", (unsigned)n, TALLY_MEMPOOL_CACHE, 0,
					RTE_MBUF_DEFAULT_BUF_SIZE, socket);
	if (d->mp == NULL) {
		snprintf(err, errlen, "mbufs: cannot create a pool of %llu mbufs on socket %d: %s "
			 "(give the EAL more memory: -m MB, or hugepages on that socket)",
			 (unsigned long long)n, socket, rte_strerror(rte_errno));
		return -ENOMEM;
	}
	fprintf(stderr, "tallyd: RX pool: %llu mbufs on socket %d (%llu needed)\n",
		(unsigned long long)n, socket, (unsigned long long)needed);
	return 0;
}

static int setup_port(struct tally_daemon *d, char *err, size_t errlen)
{
	uint16_t nq = (uint16_t)(d->cfg.rx_queues ? d->cfg.rx_queues : d->nworkers);
	int r;

	if (nq < d->nworkers) {
		snprintf(err, errlen, "rx_queues: %u queues for %u workers: every worker needs "
			 "at least one (use fewer lcores or more queues)", nq, d->nworkers);
		return -EINVAL;
	}
	r = tally_port_find(d->cfg.port, &d->port, err, errlen);
	if (r == 0)
		r = setup_pool(d, nq, err, errlen);
	if (r == 0)
		r = tally_port_start(d->port, nq, (uint16_t)d->cfg.rx_desc, d->mp, err, errlen);
	if (r < 0)
		return r;
	tally_port_report_link(d->port, stderr);
	return nq;
}

static uint64_t total(const struct tally_daemon *d, enum tally_counter c)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < d->nworkers; i++)
		v += ck_pr_load_64((uint64_t *)&d->workers[i].ctr.v[c]);
	return v;
}

/* The stop conditions: signal, tallyctl stop, run_ms, stop_after_idle_ms. */
static bool should_stop(struct tally_daemon *d, uint64_t now)
{
	uint64_t rx = total(d, TALLY_C_RX_PACKETS);

	if (signals || ck_pr_load_int(&d->stop))
		return true;
	if (d->cfg.run_ms && now - d->start_ms >= d->cfg.run_ms)
		return true;
	if (rx != d->last_rx) {
		d->last_rx = rx;
		d->last_rx_ms = now;
	}
	return d->cfg.stop_after_idle_ms && rx > 0 &&
	       now - d->last_rx_ms >= d->cfg.stop_after_idle_ms;
}

static void on_stop_check(struct tally_loop *l, void *arg)
{
	struct tally_daemon *d = arg;

	(void)l;
	d->stopping |= should_stop(d, clock_ms(CLOCK_MONOTONIC));
	if (hups != d->hups_seen) {
		d->hups_seen = hups;
		tally_live_reload_file(d);
	}
}

static void on_dedup_tick(struct tally_loop *l, void *arg)
{
	struct tally_daemon *d = arg;

	(void)l;
	/* Monotonic: a wall-clock step must not end a dedup generation early. */
	tally_dedup_tick(d->sh.dedup, clock_ms(CLOCK_MONOTONIC), total(d, TALLY_C_DEDUP_INSERTED),
			 d->sweep_rate);
}

static void on_clock_sync(struct tally_loop *l, void *arg)
{
	struct tally_daemon *d = arg;

	(void)l;
	tally_clock_sync(&d->sh.clock, rte_rdtsc(), clock_ns(CLOCK_REALTIME),
			 TALLY_CLOCK_SYNC_MS * 1000000ull);
}

static void on_ctl_expire(struct tally_loop *l, void *arg)
{
	(void)l;
	tally_ctl_expire(arg);
}

/* The control thread's periodic work, each on its own timer. */
static int start_timers(struct tally_daemon *d, char *err, size_t errlen)
{
	int r;

	d->sweep_rate = tally_dedup_sweep_rate(d->sh.dedup, DEDUP_TICK_MS);
	if ((r = tally_loop_timer(&d->loop, DEDUP_TICK_MS, on_dedup_tick, d)) < 0 ||
	    (r = tally_loop_timer(&d->loop, TALLY_CLOCK_SYNC_MS, on_clock_sync, d)) < 0 ||
	    (r = tally_loop_timer(&d->loop, STOP_CHECK_MS, on_stop_check, d)) < 0 ||
	    (r = tally_loop_timer(&d->loop, CTL_EXPIRE_MS, on_ctl_expire, d)) < 0 ||
	    (r = tally_ctl_start(d)) < 0)
		snprintf(err, errlen, "control loop: cannot start: %s", strerror(-r));
	return r;
}

/* The control thread's timers carry the dedup horizon: a tick that comes late
 * because other threads of the main lcore's CPU (flusher, sink writer, a
 * generator) had it lets a generation run past its insert budget. Raised above
 * them when allowed (root or CAP_SYS_NICE); its work per tick is microseconds. */
#define CTL_NICE (-10)

static void control_loop(struct tally_daemon *d)
{
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), CTL_NICE) != 0)
		fprintf(stderr, "tallyd: control thread keeps its priority (nice %d needs "
			"CAP_SYS_NICE): its ticks may come late on a busy CPU (ctl_late_ticks)\n",
			CTL_NICE);
	d->last_rx_ms = d->start_ms;
	while (!d->stopping)
		tally_loop_once(&d->loop, 100);
}

/*
 * The gauge state from the sink, on its own short-lived connection before the
 * writer takes the sink. A sink that is down or cannot say starts the state
 * empty (relative lines then count from 0), and the log says so.
 */
static void restore_gauges(struct tally_daemon *d)
{
	char err[256] = "";
	struct tally_sink *s = tally_sink_open(&d->cfg, err, sizeof(err));
	int r = -EOPNOTSUPP;

	tally_gauges_init(&d->fl.gauges);
	if (s != NULL && s->ops->load_gauges != NULL)
		r = s->ops->load_gauges(s, (int64_t)d->cfg.window_ms, &d->fl.gauges);
	if (r == 0)
		fprintf(stderr, "tallyd: gauge state: %zu gauges restored from the %s sink\n",
			d->fl.gauges.n, s->name);
	else
		fprintf(stderr, "tallyd: gauge state: not restored (%s); relative gauge lines "
			"count from 0 until an absolute line sets them\n",
			s == NULL ? err : r == -EOPNOTSUPP ? "the sink cannot read gauges back" : s->err);
	if (s != NULL)
		s->ops->close(s);
}

static int setup(struct tally_daemon *d, char *err, size_t errlen)
{
	uint64_t merge_rows;
	int nq, r;

	d->nworkers = rte_lcore_count() - 1;
	if (d->nworkers == 0) {
		snprintf(err, errlen, "lcores: tallyd needs a main lcore and at least one worker "
			 "lcore (EAL -l 0,1)");
		return -EINVAL;
	}
	r = setup_params(d, err, errlen);
	if (r < 0)
		return r;
	nq = setup_port(d, err, errlen);
	if (nq < 0)
		return nq;
	d->sh.dedup = tally_dedup_create(d->cfg.dedup_capacity, d->cfg.dedup_horizon_ms);
	if (d->sh.dedup == NULL) {
		snprintf(err, errlen, "dedup_capacity: cannot allocate a table for %llu ids: %s",
			 (unsigned long long)d->cfg.dedup_capacity, strerror(errno));
		return -ENOMEM;
	}
	tally_dedup_set_writers(d->sh.dedup, d->nworkers);
	d->sh.sketch_rows = (uint32_t)d->cfg.sketch_rows;
	d->fl.merge_sketch_rows = (uint32_t)(d->cfg.sketch_rows * d->nworkers);
	restore_gauges(d);
	r = tally_writer_from_config(&d->wr, &d->cfg, d->spool_dir, sizeof(d->spool_dir), err,
				     errlen);
	if (r < 0)
		return r;
	r = tally_writer_start(&d->wr, d->cfg.appliance_id, err, errlen);
	if (r < 0)
		return r;
	r = setup_workers(d, (uint16_t)nq, err, errlen);
	if (r < 0)
		return r;
	d->fl.workers = d->workers;
	d->fl.nworkers = d->nworkers;
	d->fl.writer = &d->wr;
	d->fl.appliance = d->cfg.appliance_id;
	d->fl.window_ms = (int64_t)d->cfg.window_ms;
	d->fl.interval_ms = d->cfg.flush_interval_ms;
	merge_rows = d->cfg.table_rows * d->nworkers;
	r = tally_flusher_start(&d->fl, (uint32_t)(merge_rows > INT32_MAX ? INT32_MAX : merge_rows),
				err, errlen);
	if (r < 0)
		return r;
	/* Last: a control socket that answers means tallyd is ready for traffic. */
	r = tally_loop_init(&d->loop);
	if (r < 0) {
		snprintf(err, errlen, "control loop: epoll: %s", strerror(-r));
		return r;
	}
	d->ctl_fd = tally_ctl_listen(d->cfg.ctl_socket, err, errlen);
	if (d->ctl_fd < 0)
		return d->ctl_fd;
	r = start_timers(d, err, errlen);
	if (r < 0)
		return r;
	launch_workers(d);
	/* systemd Type=notify: ready when the control socket answers (a no-op
	 * without $NOTIFY_SOCKET). */
	sd_notify(0, "READY=1");
	return 0;
}

/* Drain: workers seal their last tables, the flusher writes them, then report. */
static int shutdown_daemon(struct tally_daemon *d)
{
	uint64_t v[TALLY_C_MAX];

	fprintf(stderr, "tallyd: stopping: draining workers and flushing\n");
	sd_notify(0, "STOPPING=1");
	ck_pr_store_int(&d->sh.stop, 1);
	rte_eal_mp_wait_lcore();
	tally_flusher_stop(&d->fl);
	/* Keep answering tallyctl while the last batches go out; a second signal
	 * makes the writer stop trying the sinks: what is left goes to the spool. */
	while (!tally_flusher_done(&d->fl) || !tally_writer_done(&d->wr)) {
		if (signals >= 2)
			ck_pr_store_int(&d->wr.give_up, 1);
		tally_loop_once(&d->loop, STOP_CHECK_MS);
	}
	tally_daemon_counters(d, v);
	tally_stats_print(stderr, v, NULL, 0);
	for (unsigned i = 0; i < d->nworkers; i++)
		fprintf(stderr, "worker %u lcore %u: rx_packets %llu events_accepted %llu\n", i,
			d->workers[i].lcore,
			(unsigned long long)d->workers[i].ctr.v[TALLY_C_RX_PACKETS],
			(unsigned long long)d->workers[i].ctr.v[TALLY_C_EVENTS_ACCEPTED]);
	if (v[TALLY_C_FLUSH_ROWS_LOST]) {
		fprintf(stderr, "tallyd: %llu rows (%llu events) were NOT stored: neither the sink "
			"nor the spool took them (%s)\n", (unsigned long long)v[TALLY_C_FLUSH_ROWS_LOST],
			(unsigned long long)v[TALLY_C_FLUSH_EVENTS_LOST], d->wr.lanes[0].last_err);
		return EXIT_FAILURE;
	}
	return EXIT_SUCCESS;
}

static int parse_args(struct tally_daemon *d, int argc, char **argv, int *eal_start)
{
	char err[512];
	int r = tally_config_from_args(&d->cfg, argc, argv, eal_start, err, sizeof(err));

	if (r == 1) {
		usage(stdout);
		exit(EXIT_SUCCESS);
	}
	if (r == 2) {
		tally_config_reference(stdout);
		exit(EXIT_SUCCESS);
	}
	if (r == 0 && tally_config_validate(&d->cfg, err, sizeof(err)) != 0)
		r = -EINVAL;
	if (r != 0)
		fprintf(stderr, "tallyd: %s\n", err);
	return r;
}

/* SIGHUP reads the same file and overrides again: keep tallyd's own
 * arguments, which the EAL's argv rewrite below would clobber. */
static void save_args(struct tally_daemon *d, int argc, char **argv, int eal_start)
{
	int n = eal_start < argc || (argc > 1 && strcmp(argv[argc - 1], "--") == 0) ? eal_start - 1
										    : argc;

	d->args = calloc((size_t)n + 1, sizeof(char *));
	if (d->args == NULL)
		return; /* SIGHUP then reads defaults only: say so */
	memcpy(d->args, argv, sizeof(char *) * (size_t)n);
	d->nargs = n;
}

int main(int argc, char **argv)
{
	static struct tally_daemon d = {.ctl_fd = -1};
	char err[512];
	int eal_start, rc;

	if (parse_args(&d, argc, argv, &eal_start) != 0)
		return EXIT_FAILURE;
	save_args(&d, argc, argv, eal_start);
	/* EAL sees argv[0] followed by everything after "--". */
	argv[eal_start - 1] = argv[0];
	if (rte_eal_init(argc - eal_start + 1, argv + eal_start - 1) < 0) {
		fprintf(stderr, "tallyd: EAL init failed: %s\n", rte_strerror(rte_errno));
		return EXIT_FAILURE;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_hup);
	signal(SIGPIPE, SIG_IGN); /* a tallyctl that hangs up must not kill the daemon */
	d.start_ms = clock_ms(CLOCK_MONOTONIC);
	if (setup(&d, err, sizeof(err)) < 0) {
		fprintf(stderr, "tallyd: %s\n", err);
		ck_pr_store_int(&d.sh.stop, 1);
		rte_eal_mp_wait_lcore();
		rte_eal_cleanup();
		return EXIT_FAILURE;
	}
	fprintf(stderr, "tallyd: %u worker(s) on port %u, window %llu ms, flush every %llu ms, "
		"sink %s (%u endpoint%s), spool %s, control %s\n", d.nworkers, d.port,
		(unsigned long long)d.cfg.window_ms, (unsigned long long)d.cfg.flush_interval_ms,
		d.cfg.sink, d.wr.nlanes, d.wr.nlanes > 1 ? "s" : "", d.spool_dir, d.cfg.ctl_socket);
	control_loop(&d);
	rc = shutdown_daemon(&d);
	tally_ctl_close(&d);
	tally_loop_fini(&d.loop);
	tally_writer_fini(&d.wr);
	tally_port_stop(d.port);
	for (unsigned i = 0; i < d.nworkers; i++)
		tally_worker_fini(&d.workers[i]);
	free(d.workers);
	tally_dedup_destroy(d.sh.dedup);
	free(d.sh.params);
	free(d.args);
	tally_rules_free(d.rules);
	rte_eal_cleanup();
	return rc;
}
