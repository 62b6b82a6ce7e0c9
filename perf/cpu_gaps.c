/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tally-cpu-gaps: how long the machine itself takes a CPU away from a thread
 * that never sleeps, as tallyd's worker does. It spins on --cpu for --seconds
 * reading the TSC and counts the gaps between reads past 100 us, 1 ms and
 * 10 ms, the same classes as tallyd's worker_poll_gaps_* counters. With
 * --busy-cpu a child spins there meanwhile, as the generator keeps CPU 0 busy
 * in perf/bench.py's runs: the scheduler then moves every other task of the
 * machine (kernel threads, the driver, a shell) to the spinner's CPU.
 *
 * If tallyd's worker shows many more gaps than this probe under the same
 * load, Tally paused itself; if about as many, the CPU was taken from it, and
 * no number of RX descriptors rides out a gap longer than rx_desc / rate.
 *
 * With --touch-mb the spinner also reads and writes one random 64-byte line of
 * a buffer that large (transparent huge pages, as tallyd's tables) between
 * TSC reads, as the worker's dedup and table do for each event. On a machine
 * whose gaps grow with that (the VM of perf/RESULTS.md: its hypervisor) the
 * worker loses time inside its bursts that the guest's scheduler and tracing
 * do not see.
 *
 *   tally-cpu-gaps --cpu 1 --seconds 60 [--busy-cpu 0] [--touch-mb 2048]
 * prints a line each: gaps_100us N, gaps_1ms N, gaps_10ms N, longest_ms X, seconds S
 */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* TSC cycles a second, timed against the monotonic clock over 200 ms. */
static double tsc_hz(void)
{
	double t0 = mono_s(), t;
	uint64_t c0 = __rdtsc();

	while ((t = mono_s()) - t0 < 0.2)
		;
	return (double)(__rdtsc() - c0) / (t - t0);
}

static int pin(int cpu)
{
	cpu_set_t s;

	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	return sched_setaffinity(0, sizeof(s), &s);
}

static pid_t spin_on(int cpu)
{
	pid_t c = fork();

	if (c == 0) {
		/* never outlive the probe, even one killed mid-run */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() == 1 || pin(cpu) != 0)
			_exit(1);
		for (volatile uint64_t x = 0;; x++)
			;
	}
	return c;
}

/* The buffer the spinner touches, every page written once first so that the
 * run measures a resident table, as tallyd's are after start-up. */
static uint64_t *touch_buf(size_t mb)
{
	size_t bytes = mb << 20;
	uint64_t *b = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (b == MAP_FAILED)
		return NULL;
	madvise(b, bytes, MADV_HUGEPAGE);
	memset(b, 1, bytes);
	return b;
}

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s --cpu N --seconds S [--busy-cpu M] [--touch-mb MB]\n", argv0);
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"cpu", required_argument, NULL, 'c'},
					     {"seconds", required_argument, NULL, 's'},
					     {"busy-cpu", required_argument, NULL, 'b'},
					     {"touch-mb", required_argument, NULL, 't'},
					     {NULL, 0, NULL, 0}};
	int cpu = -1, busy = -1, o;
	size_t touch_mb = 0, lines = 0;
	uint64_t *buf = NULL, rnd = 88172645463325252ull;
	double secs = 0, hz;
	uint64_t n[3] = {0}, longest = 0, lim[3], end, last;
	pid_t child = -1;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 'c')
			cpu = atoi(optarg);
		else if (o == 's')
			secs = atof(optarg);
		else if (o == 'b')
			busy = atoi(optarg);
		else if (o == 't')
			touch_mb = strtoull(optarg, NULL, 10);
		else
			usage(argv[0]);
	}
	if (cpu < 0 || secs <= 0 || busy == cpu || touch_mb > ((size_t)1 << 30))
		usage(argv[0]);
	if (pin(cpu) != 0) {
		fprintf(stderr, "tally-cpu-gaps: cannot pin to CPU %d: %s\n", cpu, strerror(errno));
		return 1;
	}
	if (touch_mb > 0 && (buf = touch_buf(touch_mb)) == NULL) {
		fprintf(stderr, "tally-cpu-gaps: cannot map %zu MiB: %s\n", touch_mb, strerror(errno));
		return 1;
	}
	lines = (touch_mb << 20) / 64;
	hz = tsc_hz();
	if (busy >= 0) {
		child = spin_on(busy);
		usleep(10000);
		if (child < 0 || waitpid(child, NULL, WNOHANG) == child) {
			fprintf(stderr, "tally-cpu-gaps: cannot spin on CPU %d\n", busy);
			return 1;
		}
	}
	lim[0] = (uint64_t)(hz / 1e4);
	lim[1] = (uint64_t)(hz / 1e3);
	lim[2] = (uint64_t)(hz / 1e2);
	last = __rdtsc();
	end = last + (uint64_t)(secs * hz);
	while (last < end) {
		uint64_t now, gap;

		if (buf != NULL) { /* xorshift64: a line no prefetcher guesses */
			rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
			buf[(rnd % lines) * 8]++;
		}
		now = __rdtsc(), gap = now - last;
		last = now;
		if (__builtin_expect(gap < lim[0], 1))
			continue;
		n[0]++;
		n[1] += gap >= lim[1];
		n[2] += gap >= lim[2];
		longest = gap > longest ? gap : longest;
	}
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
	printf("gaps_100us %llu\ngaps_1ms %llu\ngaps_10ms %llu\nlongest_ms %.2f\nseconds %.1f\n"
	       "touch_mb %zu\n",
	       (unsigned long long)n[0], (unsigned long long)n[1], (unsigned long long)n[2],
	       (double)longest / hz * 1e3, secs, touch_mb);
	return 0;
}
