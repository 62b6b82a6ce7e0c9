/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tallyd: the daemon. Reads the config (file, then command-line overrides),
 * starts the EAL, the port, one worker per worker lcore and the flusher thread,
 * then runs the control loop on the main lcore: control socket, dedup
 * generations, stop conditions. SIGINT/SIGTERM drain the workers and flush every
 * accepted event before exit; a second signal stops retrying a failing sink.
 */
#include <errno.h>
#include <execinfo.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <ck_pr.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <systemd/sd-daemon.h>

#include "config.h"
#include "log.h"
#include "live.h"
#include "metrics.h"
#include "port.h"
#include "sink.h"
#include "sink_config.h"
#include "stats.h"
#include "tallyd.h"
#include "timeutil.h"

/* Dedup tick. Dedup generations move on ticks, so a tick must come well
 * within one generation's insert budget (capacity / 8): at 2 ms, a 1M-id horizon
 * keeps its promise up to ~60M ids/s. */
#define DEDUP_TICK_MS 2
#define STOP_CHECK_MS 10
#define CTL_EXPIRE_MS 100
#define WATCHDOG_MS 100 /* also how fresh the metrics' snapshot is */
/* Exception path: kernel traffic (ARP, ping, SSH) waits at most this long. */
#define EXCEPTION_MS 1

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

/* A crash says where, on stderr (the journal), before the default action
 * (core dump) runs: which thread (worker, flusher, a DPDK one) and its stack. */
static void on_fatal(int sig)
{
	void *pc[48];
	char name[17] = "?", msg[96];
	int n = backtrace(pc, 48), len;

	prctl(PR_GET_NAME, name, 0, 0, 0);
	len = snprintf(msg, sizeof(msg), "tallyd: fatal signal %d in thread %s; stack:\n", sig, name);
	if (write(STDERR_FILENO, msg, (size_t)len) < 0) { /* nothing better to do */ }
	backtrace_symbols_fd(pc, n, STDERR_FILENO);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void catch_fatal(void)
{
#if defined(__SANITIZE_ADDRESS__)
	(void)on_fatal; /* ASan's own report is better */
#else
	void *pc[1];
	static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};

	backtrace(pc, 1); /* loads libgcc now, not inside the handler */
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], on_fatal);
#endif
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

/* dataplane/port.c writes its start-up reports to a FILE (it has no logger):
 * here they are caught and logged line by line, a warning if they say so. */
static FILE *report_begin(char **buf, size_t *len)
{
	FILE *f = open_memstream(buf, len);

	return f != NULL ? f : stderr;
}

static void report_end(FILE *f, char **buf)
{
	char *save = NULL;

	if (f == stderr)
		return;
	fclose(f); /* sets *buf */
	for (char *l = strtok_r(*buf, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save))
		tally_log(strstr(l, "warning") || strstr(l, "link down") ? LOG_WARNING : LOG_INFO,
			  "%s", l);
	free(*buf);
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
	p->ack_mode = (uint8_t)tally_config_ack_mode(d->cfg.ack_mode);
	if (tally_config_mac_keys(d->cfg.mac_keys, p->mac.present, p->mac.key, err, errlen))
		return -EINVAL;
	p->mac.require = d->cfg.require_mac != 0;
	d->sh.params = p;
	ck_epoch_init(&d->sh.epoch);
	ck_epoch_register(&d->sh.epoch, &d->ctl_rec, NULL);
	if (tally_live_rules_init(d, err, errlen) != 0)
		return -EINVAL;
	tally_clock_init(&d->sh.clock, rte_get_tsc_hz(), rte_rdtsc(), clock_ns(CLOCK_REALTIME));
	return 0;
}

/* The writer's word that a batch is durable: its acks go back to their workers. */
static void acks_done(void *arg, struct tally_acklist *l, bool durable)
{
	struct tally_daemon *d = arg;

	tally_worker_acks_back(d->workers, l, durable);
}

/* The (port, queue) pairs go round robin over the workers, port by port:
 * with one port worker i polls queues i, i+n, ...; with two, each worker's
 * list mixes both (l3fwd's --config, derived instead of written by hand). */
static void assign_queues(struct tally_daemon *d)
{
	unsigned k = 0;

	for (unsigned p = 0; p < d->nports; p++)
		for (uint16_t q = 0; q < d->port_nq[p]; q++, k++) {
			struct tally_worker *w = &d->workers[k % d->nworkers];

			w->queues[w->nqueues++] = (struct tally_rxq){d->ports[p], q};
		}
}

/* Acks leave through TX queue i of the port of worker i's first RX queue; a
 * port with fewer TX queues than workers (or one the exception path also
 * uses, whose last queue is the kernel's) leaves the others without acks:
 * they count them under tly1_ack_unsent. */
static void assign_txqs(struct tally_daemon *d)
{
	for (unsigned i = 0; i < d->nworkers; i++) {
		struct tally_worker *w = &d->workers[i];
		unsigned p = 0;

		while (p < d->nports && d->ports[p] != w->queues[0].port)
			p++;
		w->txport = w->queues[0].port;
		w->txq = p < d->nports && i < d->port_ntxq[p] ? (int)i : -1;
	}
}

static int setup_workers(struct tally_daemon *d, char *err, size_t errlen)
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
		char *buf = NULL;
		size_t len = 0;
		FILE *f = report_begin(&buf, &len);

		/* launch_workers gives worker i the same lcore: its tables go on its node. */
		for (unsigned p = 0; p < d->nports; p++)
			tally_port_check_lcore(d->ports[p], w_lcore, i, f);
		report_end(f, &buf);
		r = tally_worker_init_node(w, i, &d->sh, (uint32_t)d->cfg.table_rows,
					   (int)rte_lcore_to_socket_id(w_lcore));
		if (r < 0) {
			snprintf(err, errlen, "worker %u: cannot allocate %llu-row tables: %s", i,
				 (unsigned long long)d->cfg.table_rows, strerror(-r));
			return r;
		}
		w->txpool = d->mp;
		if (d->sh.params->ack_mode == TALLY_ACKM_COMMITTED &&
		    tally_worker_acks_init(w, (int)rte_lcore_to_socket_id(w_lcore)) != 0) {
			snprintf(err, errlen, "ack_mode=committed: worker %u: cannot allocate "
				 "its ack lists", i);
			return -ENOMEM;
		}
	}
	assign_queues(d);
	assign_txqs(d);
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

/* TX queues asked of port p: one per worker for acks, and on a port with an
 * exception TAP one more for what that path sends out for the kernel. */
static uint16_t txqs_wanted(const struct tally_daemon *d, unsigned p)
{
	return (uint16_t)(d->nworkers + (p < d->nexc));
}

/* What every port will set up, as one need: with several ports their RX and
 * TX descriptors add up (each line of the formula is per port). */
static int pool_need(struct tally_daemon *d, struct tally_pool_need *need, char *err,
		     size_t errlen)
{
	uint64_t rx = 0, tx = 0;

	for (unsigned p = 0; p < d->nports; p++) {
		int r = tally_port_plan(d->ports[p], d->port_nq[p], txqs_wanted(d, p),
					(uint16_t)d->cfg.rx_desc, need, err, errlen);

		if (r < 0)
			return r;
		rx += need->rx_queues * need->rx_desc;
		tx += need->tx_queues * need->tx_desc;
	}
	if (d->nports > 1 || d->exc_on) {
		need->rx_queues = need->tx_queues = 1;
		need->rx_desc = rx + d->exc_mbufs;
		need->tx_desc = tx;
	}
	return 0;
}

/* The pool on the first port's socket (where the NIC writes frames), sized by
 * the formula of port_sizing.h; an explicit mbufs below it is refused at start. */
static int setup_pool(struct tally_daemon *d, char *err, size_t errlen)
{
	struct tally_pool_need need = {.lcores = d->nworkers, .burst = TALLY_BURST,
				       .cache = TALLY_MEMPOOL_CACHE,
				       /* notes in the archiver's rings hold their mbufs */
				       .held = d->cfg.archive_dir[0] ? (uint64_t)d->nworkers *
								 TALLY_ARCHIVE_RING : 0};
	uint64_t needed, n;
	int r = pool_need(d, &need, err, errlen);
	int socket = rte_eth_dev_socket_id(d->port);

	if (r < 0)
		return r;
	needed = tally_mbufs_needed(&need);
	n = d->cfg.mbufs ? d->cfg.mbufs : tally_mbufs_derived(&need);
	if (n < needed) {
		snprintf(err, errlen, "mbufs: %llu is too few: %llu RX queues x %llu descriptors + "
			 "%llu TX x %llu + %llu workers x (burst %llu + 1.5 x cache %llu) + %llu held "
			 "by the archive need at least %llu (set mbufs = 0 to derive it)", (unsigned long long)n,
			 (unsigned long long)need.rx_queues, (unsigned long long)need.rx_desc,
			 (unsigned long long)need.tx_queues, (unsigned long long)need.tx_desc,
			 (unsigned long long)need.lcores, (unsigned long long)need.burst,
			 (unsigned long long)need.cache, (unsigned long long)need.held,
			 (unsigned long long)needed);
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
	tally_log(LOG_INFO, "tallyd: RX pool: %llu mbufs on socket %d (%llu needed)",
		(unsigned long long)n, socket, (unsigned long long)needed);
	return 0;
}

static int find_port(struct tally_daemon *d, const char *devargs, uint16_t nq, uint16_t *pid,
		     char *err, size_t errlen)
{
	char full[TALLY_CFG_STR_MAX * 2];
	int r;

	if (!tally_daemon_is_af_xdp(devargs))
		return tally_port_find(devargs, pid, err, errlen);
	r = tally_daemon_xdp_prepare(d, devargs, nq, full, sizeof(full), err, errlen);
	return r < 0 ? r : tally_port_find(full, pid, err, errlen);
}

/* One device of the port list, its queue count matched to what the PMD
 * offers: rx_queues = 0 asks for one per worker, as many as the device has;
 * an explicit rx_queues above the device's limit stays an error at start. */
static int add_port(struct tally_daemon *d, const char *devargs, char *err, size_t errlen)
{
	uint16_t want = (uint16_t)(d->cfg.rx_queues ? d->cfg.rx_queues : d->nworkers), pid;
	struct rte_eth_dev_info info;
	int r;

	if (d->nports == TALLY_MAX_PORTS) {
		snprintf(err, errlen, "port: more than %d devices", TALLY_MAX_PORTS);
		return -E2BIG;
	}
	r = find_port(d, devargs, want, &pid, err, errlen);
	if (r == 0 && (r = rte_eth_dev_info_get(pid, &info)) < 0)
		snprintf(err, errlen, "port \"%s\": cannot read its limits: %s", devargs,
			 strerror(-r));
	if (r < 0)
		return r;
	if (d->cfg.rx_queues == 0 && info.max_rx_queues > 0 && want > info.max_rx_queues)
		want = info.max_rx_queues;
	d->ports[d->nports] = pid;
	d->port_nq[d->nports++] = want;
	return 0;
}

/* "port" lists devices separated by ';' (devargs hold commas). */
static int find_ports(struct tally_daemon *d, char *err, size_t errlen)
{
	char list[sizeof(d->cfg.port)], *save = NULL;
	unsigned pairs = 0;
	int r = 0;

	snprintf(list, sizeof(list), "%s", d->cfg.port);
	for (char *t = strtok_r(list, ";", &save); t != NULL && r == 0;
	     t = strtok_r(NULL, ";", &save))
		r = add_port(d, t, err, errlen);
	if (r == 0 && d->nports == 0) /* "": the first port the EAL brought up */
		r = add_port(d, "", err, errlen);
	if (r < 0)
		return r;
	for (unsigned p = 0; p < d->nports; p++)
		pairs += d->port_nq[p];
	if (pairs < d->nworkers) {
		snprintf(err, errlen, "rx_queues: %u queues in all for %u workers: every worker needs "
			 "at least one (use fewer lcores, more queues or more ports)", pairs,
			 d->nworkers);
		return -EINVAL;
	}
	d->port = d->ports[0];
	r = tally_exception_find(d, err, errlen);
	if (r < 0)
		return r;
	d->exc_mbufs = (unsigned)r;
	return 0;
}

static int setup_port(struct tally_daemon *d, char *err, size_t errlen)
{
	int r = find_ports(d, err, errlen);

	if (r == 0)
		r = setup_pool(d, err, errlen);
	for (unsigned p = 0; p < d->nports && r == 0; p++) {
		d->port_ntxq[p] = txqs_wanted(d, p);
		r = tally_port_start(d->ports[p], d->port_nq[p], &d->port_ntxq[p],
				     (uint16_t)d->cfg.rx_desc, d->mp, err, errlen);
		if (r == 0) {
			char *buf = NULL;
			size_t len = 0;
			FILE *f = report_begin(&buf, &len);

			tally_port_report_link(d->ports[p], f);
			report_end(f, &buf);
		}
	}
	/* the exception path's queue is its port's last; workers keep the rest */
	for (unsigned p = 0; p < d->nexc && r == 0; p++) {
		if (d->port_ntxq[p] == 0) {
			snprintf(err, errlen, "exception_port: port %u cannot transmit: the "
				 "kernel's replies would have no way out", d->ports[p]);
			r = -ENOTSUP;
		} else {
			d->exc_txqs[p] = --d->port_ntxq[p];
		}
	}
	/* The PMD attached tally_xdp and filled xsks_map as its queues started. */
	if (r == 0)
		r = tally_daemon_xdp_start(d, err, errlen);
	return r;
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
	tally_drain_step(d);
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
	tally_live_mac_expire(d);
	tally_live_committed_tick(d);
}

static void on_exception(struct tally_loop *l, void *arg)
{
	(void)l;
	tally_exception_poll(arg);
}

static void on_ctl_expire(struct tally_loop *l, void *arg)
{
	(void)l;
	tally_ctl_expire(arg);
}

/* Heartbeats checked, then the snapshot the metrics thread serves refreshed. */
static void on_watchdog(struct tally_loop *l, void *arg)
{
	struct tally_daemon *d = arg;

	(void)l;
	tally_watchdog_check(d, clock_ms(CLOCK_MONOTONIC));
	tally_daemon_publish(d);
	tally_log_tick(); /* "suppressed K messages" of call sites gone quiet */
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
	    (r = tally_loop_timer(&d->loop, WATCHDOG_MS, on_watchdog, d)) < 0 ||
	    (d->exc_on && (r = tally_loop_timer(&d->loop, EXCEPTION_MS, on_exception, d)) < 0) ||
	    (r = tally_ctl_start(d)) < 0)
		snprintf(err, errlen, "control loop: cannot start: %s", strerror(-r));
	return r;
}

/* The control thread's timers carry the dedup horizon: a tick that comes late
 * because other threads of the main lcore's CPU (flusher, sink writer, a
 * generator, any process) had it lets a generation run past its insert budget.
 * So it runs SCHED_FIFO at the lowest real-time priority when allowed (root or
 * CAP_SYS_NICE): it wakes as its timer fires and gives the CPU back after
 * microseconds of work; the kernel's real-time throttling still leaves the
 * others 5% should it ever spin. Else nice -10, else as it is (said once). */
#define CTL_NICE (-10)

static void raise_priority(void)
{
	struct sched_param sp = {.sched_priority = 1};

	if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0)
		return;
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), CTL_NICE) != 0)
		tally_log(LOG_WARNING, "tallyd: control thread keeps its priority (SCHED_FIFO or nice %d "
			"need CAP_SYS_NICE): its ticks may come late on a busy CPU "
			"(ctl_late_ticks)", CTL_NICE);
}

static void control_loop(struct tally_daemon *d)
{
	raise_priority();
	d->last_rx_ms = d->start_ms;
	while (!d->stopping)
		tally_loop_once(&d->loop, 100);
}

/* Watchdog state, the snapshots and the metrics server (metrics_addr). */
static int setup_reporting(struct tally_daemon *d, char *err, size_t errlen)
{
	if (tally_watchdog_init(d) < 0 || tally_snap_init(&d->published, d->nworkers) < 0 ||
	    tally_snap_init(&d->scratch, d->nworkers) < 0) {
		snprintf(err, errlen, "watchdog: out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&d->snap_lock, NULL);
	tally_daemon_publish(d);
	return tally_metrics_start(d, err, errlen);
}

/*
 * The gauge state from the sink, read through each lane's own short-lived
 * connection before the writer takes the lanes (every PostgreSQL shard holds
 * its own keys' gauges: the union is the state). A lane that is down or
 * cannot say leaves its keys empty (relative lines then count from 0 until an
 * absolute line sets them), and the log says so.
 */
static void restore_gauges(struct tally_daemon *d)
{
	tally_gauges_init(&d->fl.gauges);
	for (unsigned i = 0; i < d->wr.nlanes; i++) {
		struct tally_lane *l = &d->wr.lanes[i];
		char err[256] = "";
		struct tally_sink *s = l->open(l->open_arg, err, sizeof(err));
		int r = -EOPNOTSUPP;

		if (s != NULL && s->ops->load_gauges != NULL)
			r = s->ops->load_gauges(s, (int64_t)d->cfg.window_ms, &d->fl.gauges);
		if (r == 0)
			fprintf(stderr, "tallyd: gauge state: %zu gauges known after sink %s\n",
				d->fl.gauges.n, l->name);
		else
			fprintf(stderr, "tallyd: gauge state: not restored from sink %s (%s); its "
				"relative gauge lines count from 0 until an absolute line sets them\n",
				l->name, s == NULL ? err : r == -EOPNOTSUPP ?
				"the sink cannot read gauges back" : s->err);
		if (s != NULL)
			s->ops->close(s);
	}
}

static int setup(struct tally_daemon *d, char *err, size_t errlen)
{
	uint64_t merge_rows;
	int r;

	d->nworkers = rte_lcore_count() - 1;
	if (d->nworkers == 0) {
		snprintf(err, errlen, "lcores: tallyd needs a main lcore and at least one worker "
			 "lcore (EAL -l 0,1)");
		return -EINVAL;
	}
	r = setup_params(d, err, errlen);
	if (r < 0)
		return r;
	r = setup_port(d, err, errlen);
	if (r < 0)
		return r;
	d->sh.dedup = tally_dedup_create(d->cfg.dedup_capacity, d->cfg.dedup_horizon_ms);
	if (d->sh.dedup == NULL) {
		snprintf(err, errlen, "dedup_capacity: cannot allocate a table for %llu ids: %s",
			 (unsigned long long)d->cfg.dedup_capacity, strerror(errno));
		return -ENOMEM;
	}
	tally_dedup_set_writers(d->sh.dedup, d->nworkers);
	d->sh.sketch_rows = (uint32_t)d->cfg.sketch_rows;
	d->sh.sketch_values = (uint32_t)d->cfg.sketch_values;
	d->fl.merge_sketch_rows = (uint32_t)(d->cfg.sketch_rows * d->nworkers);
	r = tally_writer_from_config(&d->wr, &d->cfg, d->spool_dir, sizeof(d->spool_dir), err,
				     errlen);
	if (r < 0)
		return r;
	restore_gauges(d);
	d->wr.acks_done = acks_done;
	d->wr.acks_arg = d;
	/* committed acks promise what survives a crash: so must dedup (README) */
	if (d->sh.params->ack_mode == TALLY_ACKM_COMMITTED)
		d->wr.o.committed_since_ms = tally_wall_ms() - (int64_t)d->cfg.dedup_horizon_ms;
	r = tally_writer_start(&d->wr, d->cfg.appliance_id, err, errlen);
	if (r < 0)
		return r;
	d->committed = d->committed_own = d->wr.committed;
	d->wr.committed = NULL;
	d->sh.params->committed = d->committed; /* no worker runs yet */
	d->committed_until_ms = tally_mono_ms() + d->cfg.dedup_horizon_ms;
	if (d->sh.params->ack_mode == TALLY_ACKM_COMMITTED && d->cfg.committed_refresh_ms > 0) {
		d->refresher.appliance = d->cfg.appliance_id;
		d->refresher.horizon_ms = d->cfg.dedup_horizon_ms;
		d->refresher.refresh_ms = d->cfg.committed_refresh_ms;
		d->refresher.own = d->committed_own;
		d->refresher.own_until_ms = d->committed_until_ms;
		r = tally_committed_start(&d->refresher, &d->wr, err, errlen);
		if (r < 0)
			return r;
	}
	r = setup_workers(d, err, errlen);
	if (r == 0)
		r = tally_exception_start(d, err, errlen);
	if (r == 0 && d->cfg.archive_dir[0])
		r = tally_archiver_start(&d->arch, d->cfg.archive_dir, d->cfg.archive_retention_ms,
					 d->cfg.archive_max_bytes, d->cfg.archive_segment_ms,
					 d->workers, d->nworkers, err, errlen);
	if (r < 0)
		return r;
	d->fl.workers = d->workers;
	d->fl.nworkers = d->nworkers;
	d->fl.writer = &d->wr;
	r = tally_liveview_init(&d->view, (uint32_t)d->cfg.table_rows, (int64_t)d->cfg.window_ms);
	if (r < 0) {
		snprintf(err, errlen, "live view: cannot allocate %llu rows",
			 (unsigned long long)d->cfg.table_rows);
		return r;
	}
	d->fl.view = &d->view;
	d->fl.appliance = d->cfg.appliance_id;
	d->fl.window_ms = (int64_t)d->cfg.window_ms;
	d->fl.interval_ms = d->cfg.flush_interval_ms;
	merge_rows = d->cfg.table_rows * d->nworkers;
	r = tally_flusher_start(&d->fl, (uint32_t)(merge_rows > INT32_MAX ? INT32_MAX : merge_rows),
				err, errlen);
	if (r < 0)
		return r;
	r = setup_reporting(d, err, errlen);
	if (r < 0)
		return r;
	/* Last: a control socket that answers means tallyd is ready for traffic. */
	r = tally_loop_init(&d->loop);
	if (r < 0) {
		snprintf(err, errlen, "control loop: epoll: %s", strerror(-r));
		return r;
	}
	d->ctl_fd = tally_ctl_open(d, err, errlen);
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

	tally_log(LOG_NOTICE, "tallyd: stopping: draining workers and flushing");
	sd_notify(0, "STOPPING=1");
	ck_pr_store_int(&d->sh.stop, 1);
	rte_eal_mp_wait_lcore();
	tally_archiver_stop(&d->arch); /* the workers' last notes are in its rings */
	tally_flusher_stop(&d->fl);
	/* Keep answering tallyctl while the last batches go out; a second signal
	 * makes the writer stop trying the sinks: what is left goes to the spool. */
	while (!tally_flusher_done(&d->fl) || !tally_writer_done(&d->wr)) {
		if (signals >= 2)
			ck_pr_store_int(&d->wr.give_up, 1);
		tally_loop_once(&d->loop, STOP_CHECK_MS);
	}
	/* The last flushes are durable now: their acks go out from each worker's
	 * own lcore and TX queue. */
	for (unsigned i = 0; i < d->nworkers; i++)
		rte_eal_remote_launch(tally_worker_ack_drain, &d->workers[i], d->workers[i].lcore);
	rte_eal_mp_wait_lcore();
	tally_daemon_counters(d, v);
	tally_stats_print(stderr, v, NULL, 0);
	for (unsigned i = 0; i < d->nworkers; i++)
		fprintf(stderr, "worker %u lcore %u: rx_packets %llu events_accepted %llu\n", i,
			d->workers[i].lcore,
			(unsigned long long)d->workers[i].ctr.v[TALLY_C_RX_PACKETS],
			(unsigned long long)d->workers[i].ctr.v[TALLY_C_EVENTS_ACCEPTED]);
	if (v[TALLY_C_FLUSH_ROWS_LOST]) {
		tally_log(LOG_ERR, "tallyd: %llu rows (%llu events) were NOT stored: neither the sink "
			"nor the spool took them (%s)", (unsigned long long)v[TALLY_C_FLUSH_ROWS_LOST],
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
		tally_log(LOG_ERR, "tallyd: %s", err);
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

/* -c FILE, for tallyctl status (config.c has read it already). */
static const char *config_file(int argc, char **argv, int eal_start)
{
	const char *f = NULL;

	for (int i = 1; i < eal_start && i < argc; i++) {
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
			f = argv[++i];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			f = argv[i] + 9;
	}
	return f;
}

int main(int argc, char **argv)
{
	static struct tally_daemon d = {.ctl_fd = -1};
	char err[512];
	int eal_start, rc;

	if (parse_args(&d, argc, argv, &eal_start) != 0)
		return EXIT_FAILURE;
	tally_log_setup(tally_log_level_parse(d.cfg.log_level),
			tally_log_target_parse(d.cfg.log_target));
	save_args(&d, argc, argv, eal_start);
	d.config_file = config_file(argc, argv, eal_start);
	/* EAL sees argv[0] followed by everything after "--". */
	argv[eal_start - 1] = argv[0];
	if (rte_eal_init(argc - eal_start + 1, argv + eal_start - 1) < 0) {
		tally_log(LOG_ERR, "tallyd: EAL init failed: %s", rte_strerror(rte_errno));
		return EXIT_FAILURE;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_hup);
	signal(SIGPIPE, SIG_IGN); /* a tallyctl that hangs up must not kill the daemon */
	catch_fatal();
	d.start_ms = clock_ms(CLOCK_MONOTONIC);
	if (setup(&d, err, sizeof(err)) < 0) {
		tally_log(LOG_ERR, "tallyd: %s", err);
		tally_daemon_xdp_stop(&d);
		ck_pr_store_int(&d.sh.stop, 1);
		rte_eal_mp_wait_lcore();
		tally_archiver_stop(&d.arch);
		return EXIT_FAILURE; /* no rte_eal_cleanup(): see the end of main */
	}
	tally_log(LOG_NOTICE, "tallyd: %u worker(s) on %u port(s) from %u, window %llu ms, flush every %llu ms, "
		"sink %s (%u endpoint%s), spool %s, control %s", d.nworkers, d.nports, d.port,
		(unsigned long long)d.cfg.window_ms, (unsigned long long)d.cfg.flush_interval_ms,
		d.cfg.sink, d.wr.nlanes, d.wr.nlanes > 1 ? "s" : "", d.spool_dir, d.cfg.ctl_socket);
	control_loop(&d);
	rc = shutdown_daemon(&d);
	tally_metrics_stop(&d);
	tally_ctl_close(&d);
	tally_loop_fini(&d.loop);
	tally_committed_stop(&d.refresher);
	tally_writer_fini(&d.wr);
	tally_liveview_fini(&d.view);
	if (d.committed != d.committed_own)
		tally_dgset_free(d.committed);
	tally_dgset_free(d.committed_own);
	tally_exception_stop(&d);
	for (unsigned p = 0; p < d.nports; p++)
		tally_port_stop(d.ports[p]);
	tally_daemon_xdp_stop(&d); /* after the PMD's own detach, in case it left it */
	for (unsigned i = 0; i < d.nworkers; i++)
		tally_worker_fini(&d.workers[i]);
	free(d.workers);
	tally_watchdog_fini(&d);
	tally_snap_fini(&d.published);
	tally_snap_fini(&d.scratch);
	tally_dedup_destroy(d.sh.dedup);
	free(d.sh.params);
	free(d.args);
	tally_rules_free(d.rules);
	/* No rte_eal_cleanup(): DPDK 22.11's unmaps the EAL's memory while its
	 * interrupt thread still runs (later EALs cancel the thread first). The
	 * ports' close just unregistered memif's callbacks, which wakes that thread
	 * to walk its sources and call pending ones, with handles and arguments in
	 * that memory; on a loaded machine it can run after the unmap: twice
	 * tallyd died of SIGSEGV (once seen in eal-intr-thread) after a clean
	 * drain. The exit frees all of it, and the ports are closed already. */
	return rc;
}
