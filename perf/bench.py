#!/usr/bin/env python3
"""Tally benchmark driver: tally-gen -> net_memif -> tallyd, against the null
receiver (tally-null, which only frees mbufs: the packet-I/O ceiling of the
machine) in alternating runs, for scenarios A-D1; then the same scenario
through tally-pipeline (Tally's per-packet code without packet I/O); one long
run at 90% of the rate measured right before it in its own conditions (an
unpaced run on its ring with CPU 1 cleared; another after it says whether the
machine held its speed) with a paced generator (what the ring refuses is
dropped and counted, as on a NIC) that must lose nothing; and callgrind's
instructions and cache misses per event on a fixed input (signals that do not
drift with this VM's fast and slow hours). Draws perf/results.svg. Then the
two-workers step: tally-pipeline with 2 workers sharing one dedup table
against 1 worker on the same traffic, and two independent 1-worker processes
(no table shared: the machine's own ceiling for 2 cores), for the shapes of A
and B; the issue's goal is 2 workers at >= 1.8x one.

  perf/bench.py [--scenarios A,B,C,D,D1] [--runs 3] [--seconds 10] [--loss-seconds 60]
                [--no-loss-run] [--no-grind | --grind-only] [--ll SIZE,ASSOC,LINE] [--no-hugepages]
                [--quick] [--out DIR] [--build DIR] [--steps scenarios,two-workers]
                [--two-workers-scenarios A,B] [--drift-scenarios A,B]

  perf/bench.py --steps two-workers      only the two-workers step (a few minutes):
                                         its section of RESULTS.md, the rest kept
  perf/bench.py --steps loss             only the 90% runs (about 3 minutes a scenario):
                                         its section of RESULTS.md, the rest kept
  perf/bench.py --steps drift            tally-pipeline for --loss-seconds (60), A and B
                                         (--drift-scenarios), sliced every 5 s with a
                                         speed probe of the machine: does the worker slow
                                         over a long run, and does the machine with it?

Generator on cpu 0, receiver worker on cpu 1 (tallyd's main lcore and flusher
share cpu 0 with the generator). Memif moves packets by copy and the generator
retries a full ring, so the offered rate follows what the receiver takes; frames
the port drops show as imissed/rx_nombuf, frames never taken as tx failures.
As root, 2 MiB huge pages are reserved for DPDK's memory (deploy/hugepages.sh);
otherwise every DPDK process runs with --no-huge. Prints a table, writes JSON and
CSV to --out and the table to perf/RESULTS.md with the machine description.
"""
import argparse, contextlib, csv, datetime, functools, json, os, platform, re, shutil, signal, statistics
import subprocess, sys, tempfile, threading, time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMON = ["--dup-rate", "0.05", "--malformed-rate", "0.01", "--window-ms", "10000",
          "--flows", "64"]
# rows: table_rows, room for every (key, window) one flush can see (a sink that
# falls behind makes flushes cover more). Pools: enough datagrams that the pool
# draws nearly every key.
SCENARIOS = {
    "A": dict(desc="TLY1, 1 event/datagram, 1M keys uniform", unit="Mpps",
              gen=["--proto", "tly1", "--events-per-dgram", "1", "--keys", "1000000",
                   "--pool", "4194304"], rows=1310720, target=("mpps", 8.0)),
    "B": dict(desc="TLY1, 32 events/datagram, 1M keys Zipf(1.1)", unit="events/s",
              gen=["--proto", "tly1", "--events-per-dgram", "32", "--keys", "1000000",
                   "--dist", "zipf", "--zipf-s", "1.1", "--pool", "131072"],
              rows=1310720, target=("events", 20e6)),
    "C": dict(desc="TLY1, 32 events/datagram, 10M keys uniform", unit="events/s",
              gen=["--proto", "tly1", "--events-per-dgram", "32", "--keys", "10000000",
                   "--pool", "1048576"], rows=10485760, target=("events", 10e6)),
    "D": dict(desc="StatsD, 20 lines/datagram, 100k names with tags", unit="lines/s",
              gen=["--proto", "statsd", "--events-per-dgram", "20", "--keys", "100000",
                   "--pool", "65536"], rows=262144, target=("events", 15e6)),
    "D1": dict(desc="StatsD, 1 line/datagram, 100k names with tags", unit="lines/s",
               gen=["--proto", "statsd", "--events-per-dgram", "1", "--keys", "100000",
                    "--pool", "524288"], rows=262144, target=("events", 8e6)),
}
# Goals of issue 20 (A: 80% of the null ceiling, applied in summarize)
SCENARIOS["A"]["target"] = ("mpps", 1e9)
SCENARIOS["B"]["target"] = ("events", 25e6)
SCENARIOS["C"]["target"] = ("events", 12e6)
# The fixed input for callgrind: about 600k events a scenario
GRIND_DATAGRAMS = {"A": 300000, "B": 20000, "C": 20000, "D": 30000, "D1": 300000}
# This VM's sysfs and CPUID do not describe its caches (valgrind reads a 512 MiB
# 2-way LL); the L3 of one AMD EPYC (Zen 4) CCD is 32 MiB, 16-way.
DEFAULT_LL = "33554432,16,64"
DEDUP_IDS = "50000000"
procs = []


def die(msg):
    sys.exit(f"bench: {msg}")


def spawn(cmd, out):
    p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    procs.append(p)
    return p


def kill_all():
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)


def wait_for(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def kv(text):
    """'name value ...' lines -> dict of numbers."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([a-z0-9_]+)\s+(-?[0-9.]+)(\s|$)", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def peak_rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def eal(a, prefix, lcores):
    mem = ["--huge-unlink"] if a.huge else ["--no-huge"]
    return ["--", *lcores, "-m", "512", "--file-prefix", prefix, "--no-pci",
            "--log-level=*:warning", *mem]


def rsize(a, ring=False):
    """The memif ring: the client (tally-gen) allocates it, 2^rsize slots; it is
    all the RX queue a receiver has to absorb its own pauses with. The paced
    90% run gets its own (--loss-rsize): the RX descriptors that point 7 asks
    to state."""
    n = a.loss_rsize if ring else a.memif_rsize
    return f",rsize={n}" if n else ""


def slots(a, ring=False):
    """The ring's slots: memif's default is 2^10."""
    return 2 ** ((a.loss_rsize if ring else a.memif_rsize) or 10)


@contextlib.contextmanager
def worker_cpu_cleared(a):
    """The 90% run and its probe with every task that may move kept off the
    worker's CPU 1 and DAMON paused (deploy/tally-isolate-cpus), as isolcpus=
    and a machine without DAMON would have it; put back after, whatever
    happens."""
    if a.no_isolate or os.geteuid() != 0:
        yield "not isolated" + (" (not root)" if os.geteuid() != 0 else "")
        return
    state = os.path.join(tempfile.mkdtemp(prefix="tally-bench-iso."), "state.json")
    tool = [f"{TOP}/deploy/tally-isolate-cpus", "--state", state]
    p = subprocess.run(tool + ["--cpus", "1", "--pause-damon"], capture_output=True, text=True,
                       timeout=120)
    try:
        yield " ".join(p.stdout.split()) if p.returncode == 0 else "not isolated: " + p.stderr.strip()
    finally:
        if os.path.exists(state):
            subprocess.run(tool + ["--restore"], capture_output=True, timeout=120)
        shutil.rmtree(os.path.dirname(state), ignore_errors=True)


def gen_cmd(a, sc, tmp, sock, seconds, rate, expected, paced=False, ring=False):
    cmd = [f"{a.build}/perf/tally-gen"] + sc["gen"] + COMMON + (["--paced"] if paced else []) + [
        "--duration", str(seconds), "--rate", str(int(rate)), "--linger", "300",
        "--stall-timeout", "60",
        "--port", f"net_memif0,role=client,socket={sock},socket-abstract=no{rsize(a, ring)}"]
    if expected:
        cmd += ["--expected", f"{tmp}/expected.tsv"]
    return cmd + eal(a, "bgen", ["-l", "0"])


def start_receiver(a, name, sc, tmp, seconds, log, ring=False):
    sock, ctl = f"{tmp}/memif.sock", f"{tmp}/ctl.sock"
    dev = f"net_memif0,role=server,socket={sock},socket-abstract=no{rsize(a, ring)}"
    if name == "tally":
        recv = spawn([f"{a.build}/ctrlplane/tallyd", "--port", dev, "--sqlite_path",
                      f"{tmp}/tally.db", "--ctl_socket", ctl, "--spool_dir", f"{tmp}/spool",
                      "--dedup_capacity", DEDUP_IDS,
                      "--table_rows", str(sc["rows"]), "--stop_after_idle_ms", "10000"]
                     + eal(a, "brecv", ["--lcores", "0@0,1@1"]), log)
        ready = lambda: os.path.exists(ctl)
    else:
        recv = spawn([f"{a.build}/perf/tally-null", "--duration", str(seconds + 4), "--port", dev]
                     + eal(a, "brecv", ["-l", "1"]), log)
        ready = lambda: os.path.exists(sock)
    wait_for(lambda: ready() or recv.poll() is not None, 300, name)
    if recv.poll() is not None:
        raise RuntimeError(f"{name} exited early")
    return recv


def sample_worker(a, ctl, stop, out):
    """tallyctl stats once a second while a paced run goes: a run that loses
    frames says when the worker was too slow for the rate, and by how much
    (the seconds are kept in the raw JSON, per_second)."""
    t0 = time.monotonic()
    while not stop.wait(1.0):
        p = subprocess.run([f"{a.build}/ctrlplane/tallyctl", "-s", ctl, "stats"],
                           capture_output=True, text=True, timeout=30)
        r = kv(p.stdout)
        if "worker_cycles" in r:
            out.append((time.monotonic() - t0, r.get("events_in", 0), r["worker_cycles"]))


def slowest_second(samples):
    """Of the run's one-second slices with traffic, the one where the worker was
    busiest: (seconds into the run, share of the second busy, cycles/event),
    and how many slices it was busy >= 95% (too slow for the rate, whatever
    the ring: it fills at rate x the time the worker falls behind)."""
    worst, full = None, 0
    if not nominal_hz():
        return None
    for (t1, e1, c1), (t2, e2, c2) in zip(samples, samples[1:]):
        if e2 <= e1:
            continue
        busy = busy_share(c2 - c1, t2 - t1)
        full += busy >= 0.95
        if worst is None or busy > worst[1]:
            worst = (t2 - samples[0][0], busy, (c2 - c1) / (e2 - e1))
    return worst and dict(at_s=worst[0], busy=worst[1], cycles=worst[2], full=full)


def run_receiver(a, name, sc, seconds, rate=0, check=True, paced=False, ring=None):
    """One run; paced: the generator drops what the ring refuses; ring: the
    90% run's ring (--loss-rsize; by default, when paced)."""
    ring = paced if ring is None else ring
    tmp = tempfile.mkdtemp(prefix="tally-bench.")
    rlog, glog = open(f"{tmp}/recv.txt", "w+"), open(f"{tmp}/gen.txt", "w+")
    try:
        recv = start_receiver(a, name, sc, tmp, seconds, rlog, ring)
        gen = spawn(gen_cmd(a, sc, tmp, f"{tmp}/memif.sock", seconds, rate,
                            name == "tally" and check, paced, ring), glog)
        samples, stop = [], threading.Event()
        if paced and name == "tally":
            threading.Thread(target=sample_worker, args=(a, f"{tmp}/ctl.sock", stop, samples),
                             daemon=True).start()
        wait_for(lambda: "events_per_sec" in open(f"{tmp}/gen.txt").read() or gen.poll() is not None,
                 seconds + 900, "the generator's report")
        stop.set()
        rss = peak_rss_mb(recv.pid)
        recv.wait(timeout=1800)
        gen.wait(timeout=310)
        g, r = kv(open(f"{tmp}/gen.txt").read()), kv(open(f"{tmp}/recv.txt").read())
        res = dict(receiver=name, gen=g, recv=r, rss_mb=rss, exact=None,
                   slowest=slowest_second(samples), per_second=samples)
        if name == "tally" and check:
            c = subprocess.run([f"{TOP}/perf/tally-check", f"{tmp}/expected.tsv", f"{tmp}/tally.db"],
                               capture_output=True, text=True, timeout=1800)
            res["exact"] = c.returncode == 0
            res["check"] = (c.stdout.strip().splitlines() or [c.stderr.strip()])[-1]
        return res
    except Exception as e:  # keep the other runs going; say what broke
        kill_all()
        tail = open(f"{tmp}/recv.txt").read()[-1500:]
        return dict(receiver=name, error=str(e), recv_tail=tail)
    finally:
        kill_all()
        shutil.rmtree(tmp, ignore_errors=True)


def run_pipeline(a, sc, seconds):
    """Tally's per-packet code on the same frames, without packet I/O."""
    cmd = ([f"{a.build}/perf/tally-pipeline"] + sc["gen"] + COMMON +
           ["--table-rows", str(sc["rows"]), "--dedup-capacity", DEDUP_IDS,
            "--seconds", str(seconds)] + eal(a, "bpipe", ["-l", "1"]))
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 600)
    r = kv(p.stdout)
    if p.returncode != 0 or "events_per_sec" not in r:
        return dict(error=(p.stdout + p.stderr)[-500:])
    return dict(events_per_s=r["events_per_sec"], cycles_per_event=r["cycles_per_event"],
                huge_mb=r.get("huge_pages_mb", 0), check="check OK" in p.stdout)


def cpu_gaps(a, seconds):
    """The machine's own gaps on the worker's cpu 1 with cpu 0 kept busy, as the
    generator keeps it: what tallyd's worker_poll_gaps_* would read if Tally
    never paused itself."""
    p = subprocess.run([f"{a.build}/perf/tally-cpu-gaps", "--cpu", "1", "--busy-cpu", "0",
                        "--seconds", str(seconds)], capture_output=True, text=True,
                       timeout=seconds + 60)
    r = kv(p.stdout)
    return [r.get("gaps_" + t, 0) for t in ("100us", "1ms", "10ms")] + [r.get("longest_ms", 0)]


@functools.lru_cache(maxsize=None)
def nominal_hz():
    """The TSC's rate: with constant_tsc it ticks at the CPU's nominal MHz."""
    try:
        with open("/proc/cpuinfo") as f:
            return float(re.search(r"^cpu MHz\s*:\s*([0-9.]+)", f.read(), re.M).group(1)) * 1e6
    except (OSError, AttributeError):
        return 0.0


def busy_share(cycles, seconds):
    """The share of seconds the worker spent in bursts (worker_cycles are TSC cycles)."""
    return cycles / (seconds * nominal_hz()) if nominal_hz() else 0


def metrics(res):
    g, r = res["gen"], res["recv"]
    secs = g.get("seconds") or 1
    if res["receiver"] == "null":
        return dict(offered_mpps=g["datagrams_sent"] / secs / 1e6, rx_mpps=r.get("mpps", 0),
                    imissed=r.get("imissed", 0), nombuf=r.get("rx_nombuf", 0))
    events = r.get("events_in", 0)
    return dict(offered_mpps=g["datagrams_sent"] / secs / 1e6,
                rx_mpps=r.get("rx_packets", 0) / secs / 1e6,
                events_per_s=r.get("events_accepted", 0) / secs,
                events_in_per_s=events / secs,
                lines_per_s=r.get("statsd_lines", 0) / secs,
                cycles_per_event=r.get("worker_cycles", 0) / events if events else 0,
                loss=g["datagrams_sent"] - r.get("rx_packets", 0),
                refused=g.get("frames_tx_failed", 0),
                behind=g.get("frames_behind_skipped", 0),
                imissed=r.get("port_imissed", 0), nombuf=r.get("port_rx_nombuf", 0),
                table_full=r.get("drop_table_full", 0), seal_deferred=r.get("seal_deferred", 0),
                seal_timeouts=r.get("seal_timeouts", 0),
                gaps=[r.get("worker_poll_gaps_" + t, 0) for t in ("100us", "1ms", "10ms")],
                gap_s=r.get("worker_poll_gap_us", 0) / 1e6,
                taken_s=r.get("worker_cpu_taken_us", 0) / 1e6,
                # share of the run the worker spent in bursts: near 1, it was
                # too slow for the rate, whatever the ring
                busy=busy_share(r.get("worker_cycles", 0), secs),
                rss_mb=res["rss_mb"], exact=res["exact"])


def med(vals):
    vals = [v for v in vals if v is not None]
    return (statistics.median(vals), min(vals), max(vals)) if vals else (0, 0, 0)


def machine(a):
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                  if l.startswith("model name")), platform.processor())
    mem = next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))
    dpdk = subprocess.run(["pkg-config", "--modversion", "libdpdk"], capture_output=True,
                          text=True).stdout.strip()
    thp = open("/sys/kernel/mm/transparent_hugepage/enabled").read().strip()
    pages = "2 MiB huge pages" if a.huge else "--no-huge (4 KiB pages)"
    return (f"{model}, {os.cpu_count()} cores, {int(mem) // 1024 // 1024} GiB, kernel "
            f"{platform.release()}, DPDK {dpdk}; DPDK memory: {pages}; tallyd's tables: "
            f"transparent huge pages ({thp})")


def fmt(t, scale=1):
    return f"{t[0] * scale:.2f} [{t[1] * scale:.2f}-{t[2] * scale:.2f}]"


def loss_summary(loss):
    lm = metrics(loss) if "error" not in loss else None
    return dict(rate_mpps=loss.get("rate", 0) / 1e6, loss=lm and lm["loss"],
                refused=lm and lm["refused"], offered=lm and lm["offered_mpps"],
                behind=lm and lm["behind"],
                imissed=lm and lm["imissed"], exact=lm and lm["exact"],
                gaps=lm and lm["gaps"], machine_gaps=loss.get("machine_gaps"),
                gap_s=lm and lm["gap_s"], taken_s=lm and lm["taken_s"],
                busy=lm and lm["busy"], cycles=lm and lm["cycles_per_event"],
                ring=loss.get("ring"), slowest=loss.get("slowest"),
                ref_before=loss.get("ref_before"), ref_after=loss.get("ref_after"),
                ref_table=loss.get("ref_table"), ref_used=loss.get("ref_used"),
                error=loss.get("error"))


def ref_text(lr):
    """Where the 90% run's rate came from, and whether the machine held it."""
    used = lr.get("ref_before") if lr.get("ref_used") == "before" else lr.get("ref_table")
    where = ("measured right before, same ring, CPU 1 cleared" if lr.get("ref_used") == "before"
             else "the 10 s runs' median")
    return (f"90% of {used or 0:.2f} Mpps ({where}"
            + (f"; the 10 s runs' median {lr['ref_table']:.2f}" if lr.get("ref_table")
               and lr.get("ref_used") == "before" else "")
            + (f"; right after: {lr['ref_after']:.2f}, {100 * lr['ref_after'] / used:.0f}% of it"
               if lr.get("ref_after") and used else "") + ")")


def loss_text(lr):
    if not lr or lr.get("error") is not None or lr["loss"] is None:
        return "-" if not lr or not lr.get("error") else f"failed: {lr['error'][:120]}"
    return (f"{lr['rate_mpps']:.2f} Mpps, {ref_text(lr)} (offered {lr['offered']:.2f}: the "
            f"generator skipped {lr['behind']:.0f} behind schedule): loss {lr['loss']:.0f} (ring "
            f"refused {lr['refused']:.0f}), exact {lr['exact']}; "
            + (f"the ring's {lr['ring']} slots cover {lr['ring'] / lr['offered'] / 1e3:.1f} ms "
               "at the offered rate; " if lr.get("ring") and lr["offered"] else "")
            + f"worker busy {100 * (lr.get('busy') or 0):.0f}% "
            f"of the run at {lr.get('cycles') or 0:.0f} cycles/event"
            + (f", {100 * lr['slowest']['busy']:.0f}% in its busiest second ({lr['slowest']['at_s']:.0f} s "
               f"in, {lr['slowest']['cycles']:.0f} cycles/event), >= 95% in "
               f"{lr['slowest']['full']} of its seconds" if lr.get("slowest") else "")
            + "; poll gaps over 0.1/1/10 ms: worker "
            + "/".join(f"{g:.0f}" for g in lr.get("gaps") or [0, 0, 0]) + ", machine alone "
            + "/".join(f"{g:.0f}" for g in (lr.get("machine_gaps") or [0, 0, 0, 0])[:3])
            + f" (longest {(lr.get('machine_gaps') or [0, 0, 0, 0])[3]:.1f} ms); the worker's "
            f"gaps over 0.1 ms: {lr.get('gap_s') or 0:.2f} s, CPU taken by other tasks "
            f"{lr.get('taken_s') or 0:.2f} s")


def summarize(name, sc, tally, null, pipe, loss):
    tm = [metrics(r) for r in tally if "error" not in r]
    nm = [metrics(r) for r in null if "error" not in r]
    pm = [p for p in pipe if "error" not in p]
    rx, ceil = med([m["rx_mpps"] for m in tm]), med([m["rx_mpps"] for m in nm])
    key = "lines_per_s" if name.startswith("D") else "events_per_s"
    ev = med([m[key] / 1e6 for m in tm])
    s = dict(scenario=name, desc=sc["desc"], runs=len(tm), null_runs=len(nm),
             offered_mpps=med([m["offered_mpps"] for m in tm]), rx_mpps=rx,
             mevents_per_s=ev, null_mpps=ceil, ratio=rx[0] / ceil[0] if ceil[0] else 0,
             cycles_per_event=med([m["cycles_per_event"] for m in tm]),
             pipe_mevents=med([p["events_per_s"] / 1e6 for p in pm]),
             pipe_cycles=med([p["cycles_per_event"] for p in pm]),
             pipe_check=all(p["check"] for p in pm) if pm else False,
             imissed=sum(m["imissed"] for m in tm), nombuf=sum(m["nombuf"] for m in tm),
             table_full=sum(m["table_full"] for m in tm), rss_mb=max([m["rss_mb"] for m in tm] or [0]),
             exact=all(m["exact"] for m in tm) if tm else False,
             errors=[r["error"] for r in tally + null + pipe if "error" in r])
    if loss:
        s["loss_run"] = loss_summary(loss)
    kind, goal = sc["target"]
    got = rx[0] if kind == "mpps" else ev[0] * 1e6
    if kind == "mpps":
        goal = min(goal, 0.8 * ceil[0]) if ceil[0] else goal
    s["target"] = dict(goal=goal, got=got, met=got >= goal,
                       short_by_pct=0 if got >= goal else 100 * (1 - got / goal))
    return s


def table(summary):
    hdr = ("| scen | offered Mpps | received Mpps | M events/s per worker core | null ceiling Mpps "
           "| ratio | cycles/event | Tally alone: M events/s (cycles/event) | imissed | nombuf "
           "| table full | peak RSS MB | exact | 90% run, paced | target |")
    lines = [hdr, "|" + "---|" * 15]
    for s in summary:
        lrt = loss_text(s.get("loss_run"))
        t = s["target"]
        unit = "Mpps" if s["scenario"] == "A" else "M/s"
        tt = (f"met ({t['got'] / 1e6 if unit != 'Mpps' else t['got']:.2f} >= "
              f"{t['goal'] / 1e6 if unit != 'Mpps' else t['goal']:.2f} {unit})" if t["met"] else
              f"missed by {t['short_by_pct']:.0f}% (goal {t['goal'] / 1e6 if unit != 'Mpps' else t['goal']:.2f} {unit})")
        lines.append(f"| {s['scenario']} | {fmt(s['offered_mpps'])} | {fmt(s['rx_mpps'])} | "
                     f"{fmt(s['mevents_per_s'])} | {fmt(s['null_mpps'])} | {s['ratio']:.2f} | "
                     f"{s['cycles_per_event'][0]:.0f} | {fmt(s['pipe_mevents'])} "
                     f"({s['pipe_cycles'][0]:.0f}) | {s['imissed']:.0f} | {s['nombuf']:.0f} | "
                     f"{s['table_full']:.0f} | {s['rss_mb']:.0f} | {s['exact']} | {lrt} | {tt} |")
    return "\n".join(lines)


def setup_hugepages(a):
    if a.no_hugepages:
        return False
    r = subprocess.run(["bash", f"{TOP}/deploy/hugepages.sh", "768"], capture_output=True, text=True)
    print((r.stdout + r.stderr).strip())
    return r.returncode == 0


def grind(a, name, sc, keep=None):
    """Instructions and cache misses per event inside the worker's burst function,
    under callgrind on a fixed input: signals that do not drift with the machine."""
    n = GRIND_DATAGRAMS[name]
    gen = list(sc["gen"])
    i = gen.index("--pool")
    gen[i + 1] = str(min(int(gen[i + 1]), n))
    tmp = tempfile.mkdtemp(prefix="tally-grind.")
    out = f"{tmp}/callgrind.out"
    cmd = (["valgrind", "--tool=callgrind", "--cache-sim=yes", f"--LL={a.ll}",
            "--toggle-collect=tally_worker_burst", f"--callgrind-out-file={out}",
            f"{a.build}/perf/tally-pipeline"] + gen + COMMON +
           ["--table-rows", str(sc["rows"]), "--dedup-capacity", DEDUP_IDS,
            "--datagrams", str(n)] + eal(a, "bgrind", ["-l", "1"]))
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        r = kv(p.stdout)
        ev = next((l.split()[1:] for l in open(out) if l.startswith("events:")), [])
        tot = next((l.split()[1:] for l in open(out) if l.startswith("totals:")), [])
        c = dict(zip(ev, map(int, tot)))
        events = r.get("events", 0)
        if p.returncode != 0 or not events or "Ir" not in c:
            return dict(error=(p.stdout + p.stderr)[-500:])
        if keep:
            shutil.copy(out, keep)
        return dict(events=events, datagrams=n, check="check OK" in p.stdout,
                    instr=c["Ir"] / events, d1_miss=(c["D1mr"] + c["D1mw"]) / events,
                    ll_miss=(c["ILmr"] + c["DLmr"] + c["DLmw"]) / events)
    except (OSError, subprocess.TimeoutExpired, StopIteration) as e:
        return dict(error=str(e))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def grind_table(summary, ll):
    lines = [f"| scen | fixed input | instructions/event | D1 misses/event | LL misses/event "
             f"(LL {ll}) | counters check |", "|---|---|---|---|---|---|"]
    for s in summary:
        g = s.get("grind")
        if not g:
            continue
        if "error" in g:
            lines.append(f"| {s['scenario']} | error: {g['error'][-80:]} | | | | |")
            continue
        lines.append(f"| {s['scenario']} | {g['datagrams']} datagrams, {g['events']:.0f} events | "
                     f"{g['instr']:.0f} | {g['d1_miss']:.2f} | {g['ll_miss']:.2f} | "
                     f"{'OK' if g['check'] else 'FAIL'} |")
    return "\n".join(lines)


def plot(summary, path):
    """Tally against the null ceiling and the goal, per scenario, in M events/s
    (the ceiling: null Mpps times events per datagram), with the run-to-run range."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no matplotlib (apt-get install python3-matplotlib): no results.svg")
        return False
    fig, axes = plt.subplots(1, len(summary), figsize=(3 * len(summary), 4), squeeze=False)
    for ax, s in zip(axes[0], summary):
        sc = SCENARIOS[s["scenario"]]
        per = int(sc["gen"][sc["gen"].index("--events-per-dgram") + 1])
        vals = [s["mevents_per_s"], tuple(v * per for v in s["null_mpps"])]
        mids = [v[0] for v in vals]
        err = [[v[0] - v[1] for v in vals], [v[2] - v[0] for v in vals]]
        ax.bar(["Tally", "null"], mids, yerr=err, capsize=4, color=["tab:blue", "tab:gray"])
        goal = s["target"]["goal"] * (per if sc["target"][0] == "mpps" else 1e-6)
        ax.axhline(goal, color="tab:red", linestyle="--", label="goal")
        ax.set_title(f"{s['scenario']}: {'met' if s['target']['met'] else 'missed'}")
        ax.set_ylabel("M events/s" if not s["scenario"].startswith("D") else "M lines/s")
        ax.legend(loc="upper right", fontsize=7)
    fig.suptitle("Tally (one worker core) vs the null receiver, median and range")
    fig.tight_layout()
    fig.savefig(path)
    return True


def run_scenario(a, name, sc, raw):
    print(f"== scenario {name}: {sc['desc']}", flush=True)
    tally, null, pipe = [], [], []
    for i in range(a.runs):
        for recv, acc in (("tally", tally), ("null", null)):
            r = run_receiver(a, recv, sc, a.seconds)
            acc.append(r)
            raw.append(dict(scenario=name, run=i, **r))
            m = metrics(r) if "error" not in r else r
            print(f"   {recv:5} run {i}: {json.dumps(m, default=str)[:300]}", flush=True)
    for i in range(a.runs):
        p = run_pipeline(a, sc, min(a.seconds, 5))
        pipe.append(p)
        raw.append(dict(scenario=name, run=i, receiver="pipeline", **p))
        print(f"   pipeline run {i}: {json.dumps(p)[:300]}", flush=True)
    loss = None
    good = [metrics(r)["rx_mpps"] for r in tally if "error" not in r]
    if not a.no_loss_run and good:
        loss = loss_run(a, name, sc, statistics.median(good), raw)
    s = summarize(name, sc, tally, null, pipe, loss)
    if not a.no_grind:
        s["grind"] = grind(a, name, sc)
        raw.append(dict(scenario=name, run="grind", receiver="callgrind", **s["grind"]))
        print(f"   callgrind: {json.dumps(s['grind'])[:300]}", flush=True)
    return s


def ref_run(a, name, sc, when, raw):
    """An unpaced run of a.seconds in the 90% run's own conditions (its ring, CPU
    1 cleared): the receiver's rate as it is now; 0 if the run failed."""
    r = run_receiver(a, "tally", sc, a.seconds, check=False, ring=True)
    raw.append(dict(scenario=name, run=f"loss90-ref-{when}", **r))
    mpps = metrics(r)["rx_mpps"] if "error" not in r else 0
    print(f"   reference {when} the 90% run: {mpps:.2f} Mpps", flush=True)
    return mpps


def loss_rate(loss_ref, before, table):
    """The 90% run's rate in frames/s, and which reference set it: the run right
    before unless --loss-ref table asks for the 10 s runs' median or the run
    before failed; 0 when there is none."""
    used = "table" if loss_ref == "table" or not before else "before"
    base = table if used == "table" else before
    return 0.9 * (base or 0) * 1e6, used


def loss_run(a, name, sc, table_mpps, raw):
    """The paced run at 90% of the rate measured right before it in its own
    conditions (--loss-ref before, the default: this VM's speed drifts 1.2-1.8x
    within minutes, more than the 10% margin, and the 10 s runs have the small
    ring and CPU 1 shared), or of the 10 s runs' median (--loss-ref table).
    A second reference right after says whether the machine held its speed."""
    with worker_cpu_cleared(a) as iso:
        before = ref_run(a, name, sc, "before", raw)
        rate, used = loss_rate(a.loss_ref, before, table_mpps)
        if not rate:
            return dict(receiver="tally", error="no reference rate for the 90% run")
        loss = run_receiver(a, "tally", sc, a.loss_seconds, rate=rate, paced=True)
        after = ref_run(a, name, sc, "after", raw)
        loss["machine_gaps"] = cpu_gaps(a, a.loss_seconds)
    loss.update(rate=rate, isolated=iso, ring=slots(a, ring=True), ref_before=before,
                ref_after=after, ref_table=table_mpps, ref_used=used)
    raw.append(dict(scenario=name, run="loss90", **loss))
    print(f"   90% run at {rate / 1e6:.2f} Mpps: "
          f"{json.dumps(metrics(loss) if 'error' not in loss else loss, default=str)[:300]}")
    return loss


TWO_GOAL = 1.8  # issue "Line rate, round two", point 5: 2 workers at >= 1.8x one
TWO_TITLE = "## Two workers sharing one dedup table (`perf/bench.py --steps two-workers`)"


def pipeline_cmd(a, sc, seconds, workers, lcores, prefix, extra=()):
    return ([f"{a.build}/perf/tally-pipeline"] + sc["gen"] + COMMON + list(extra) +
            ["--table-rows", str(sc["rows"]), "--dedup-capacity", DEDUP_IDS,
             "--seconds", str(seconds), "--workers", str(workers)] + eal(a, prefix, lcores))


def pipeline_result(p):
    r = kv(p.stdout)
    if p.returncode != 0 or "events_per_sec" not in r:
        return dict(error=(p.stdout + p.stderr)[-500:])
    n = int(r.get("workers", 1))
    names = [f"worker{i}_" for i in range(n)] if n > 1 else [""]
    return dict(rate=r["events_per_sec"], rate_p50=r["events_per_sec_p50"],
                cpe=[r[f"{w}cycles_per_event"] for w in names],
                cpe_p50=[r[f"{w}cycles_per_event_p50"] for w in names],
                preempted=r.get("worker_preempted", 0), check="check OK" in p.stdout)


def run_two(a, sc, seconds, mode):
    """mode 1: one worker on CPU 0; 1b: one worker on CPU 1 (the shared VM's two
    CPUs are not always equally fast: the baseline is both); 1c: one worker on
    CPU 0 writing dedup by CAS (the CAS's own cost); 2: two workers, one dedup
    table; 2p: two 1-worker processes at once, one a CPU (their rates summed:
    nothing shared but the machine)."""
    t = seconds + 900
    if mode != "2p":
        n = int(mode[0])
        lcores = "1" if mode == "1b" else f"0-{n - 1}"
        p = subprocess.run(pipeline_cmd(a, sc, seconds, n, ["-l", lcores], "btwo",
                                        ["--dedup-cas"] if mode == "1c" else []),
                           capture_output=True, text=True, timeout=t)
        return dict(pipeline_result(p), load=os.getloadavg()[0])
    # the second process is the second worker's producer (seed 2, as --workers 2 gives it)
    ps = [subprocess.Popen(pipeline_cmd(a, sc, seconds, 1, ["-l", str(c)], f"btwo{c}",
                                        ["--seed", str(c + 1), "--sender-id", str(0x7a11 + c)]),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
          for c in (0, 1)]
    rs = []
    for p in ps:
        out, err = p.communicate(timeout=t)
        rs.append(pipeline_result(subprocess.CompletedProcess(p.args, p.returncode, out, err)))
    bad = [r for r in rs if "error" in r]
    if bad:
        return bad[0]
    return dict(rate=sum(r["rate"] for r in rs), rate_p50=sum(r["rate_p50"] for r in rs),
                load=os.getloadavg()[0],
                cpe=[r["cpe"][0] for r in rs], cpe_p50=[r["cpe_p50"][0] for r in rs],
                preempted=sum(r["preempted"] for r in rs), check=all(r["check"] for r in rs))


def two_workers(a, names, raw):
    """1 worker, 2 workers and 2 processes, alternating, a.runs rounds a shape."""
    out = []
    for name in names:
        sc = SCENARIOS[name]
        print(f"== two workers, scenario {name}: {sc['desc']}", flush=True)
        runs = {"1": [], "1b": [], "1c": [], "2": [], "2p": []}
        for i in range(a.runs):
            for mode, acc in runs.items():
                r = run_two(a, sc, min(a.seconds, 5), mode)
                acc.append(r)
                raw.append(dict(scenario=name, run=i, receiver=f"pipeline-{mode}", **r))
                print(f"   {mode:2} run {i}: {json.dumps(r)[:300]}", flush=True)
        out.append(two_summary(name, sc, runs))
    return out


def two_summary(name, sc, runs):
    ok = {m: [r for r in rs if "error" not in r] for m, rs in runs.items()}
    # ratios of runs made next to each other (the machine's hour moves both), to
    # the mean of one worker on each CPU
    pair = lambda m, k: [b[k] / ((o[k] + o1[k]) / 2)
                         for o, o1, b in zip(runs["1"], runs["1b"], runs[m])
                         if "error" not in o and "error" not in o1 and "error" not in b]
    s = dict(scenario=name, desc=sc["desc"], runs=len(ok["2"]),
             load=med([r["load"] for rs in ok.values() for r in rs]),
             errors=[r["error"] for rs in runs.values() for r in rs if "error" in r],
             exact=all(r["check"] for rs in ok.values() for r in rs) and bool(ok["2"]))
    for m in runs:
        s[f"rate_{m}"] = med([r["rate"] / 1e6 for r in ok[m]])
        s[f"rate_p50_{m}"] = med([r["rate_p50"] / 1e6 for r in ok[m]])
        s[f"cpe_{m}"] = med([c for r in ok[m] for c in r["cpe"]])
        s[f"cpe_p50_{m}"] = med([c for r in ok[m] for c in r["cpe_p50"]])
        s[f"preempted_{m}"] = med([r["preempted"] for r in ok[m]])
    for m in ("2", "2p"):
        s[f"ratio_{m}"] = med(pair(m, "rate"))
        s[f"ratio_p50_{m}"] = med(pair(m, "rate_p50"))
    s["met"] = s["ratio_2"][0] >= TWO_GOAL
    return s


def two_table(summary):
    lines = ["| scen | 1 worker on CPU 0 / on CPU 1: M events/s (cycles/event) | 2 workers, 1 dedup table: M events/s "
             "(cycles/event a worker) | ratio | 2 processes, nothing shared: M events/s (ratio) "
             "| from median bursts: 1 (mean of both CPUs) / 2 workers / 2 processes M events/s "
             "(ratio 2w, 2p) | median burst's cycles/event: 1 worker CPU 0 / CPU 1 / 1 worker "
             "CAS / 2 workers / 2 processes "
             "| load avg | exact | goal 2 workers >= 1.8x |", "|" + "---|" * 10]
    for s in summary:
        goal = (f"{'met' if s['met'] else 'missed'} ({s['ratio_2'][0]:.2f}x; from median "
                f"bursts {'met' if s['ratio_p50_2'][0] >= TWO_GOAL else 'missed'}, "
                f"{s['ratio_p50_2'][0]:.2f}x)"
                if s["runs"] else f"no run: {(s['errors'] or ['?'])[0][-80:]}")
        lines.append(
            f"| {s['scenario']} | {fmt(s['rate_1'])} ({s['cpe_1'][0]:.0f}) / {fmt(s['rate_1b'])} "
            f"({s['cpe_1b'][0]:.0f}) | {fmt(s['rate_2'])} "
            f"({s['cpe_2'][0]:.0f}) | {fmt(s['ratio_2'])} | {fmt(s['rate_2p'])} "
            f"({s['ratio_2p'][0]:.2f}) | {(s['rate_p50_1'][0] + s['rate_p50_1b'][0]) / 2:.2f} / "
            f"{s['rate_p50_2'][0]:.2f} / "
            f"{s['rate_p50_2p'][0]:.2f} ({s['ratio_p50_2'][0]:.2f}, {s['ratio_p50_2p'][0]:.2f}) "
            f"| {' / '.join(fmt0(s[f'cpe_p50_{m}']) for m in ('1', '1b', '1c', '2', '2p'))} "
            f"| {fmt(s['load'])} | {s['exact']} | {goal} |")
    return "\n".join(lines)


def fmt0(t):
    return f"{t[0]:.0f} [{t[1]:.0f}-{t[2]:.0f}]"


def two_section(a, summary, stamp):
    return (f"{TWO_TITLE}\n\nMeasured {datetime.datetime.now():%Y-%m-%d %H:%M} with "
            f"`{' '.join(sys.argv)}` ({a.runs} rounds of 1 worker on CPU 0, on CPU 1, 1 worker CAS, 2 workers, 2 processes, "
            f"{min(a.seconds, 5):.0f} s each, alternating; median [min-max]).\n\n"
            f"Machine: {machine(a)}.\n\n{two_table(summary)}\n\n"
            "tally-pipeline --workers 2 (no packet I/O; EAL -l 0-1): two workers, each with its "
            "own frame pool (seed + i: other producers and event ids, as RSS on the 5-tuple "
            "gives each queue its flows), window tables and counters, sharing one dedup table "
            "written by CAS, as tallyd's workers. M events/s is the sum of the workers' own "
            "rates over their timed bursts; ratio = 2 workers / the mean of the 1-worker runs on "
            "CPU 0 and CPU 1 next to it (the VM's two CPUs do not always run at one speed: "
            "a baseline on CPU 0 alone moved the ratio by up to 2x). "
            "\"1 worker CAS\" is tally-pipeline --dedup-cas: one worker writing the dedup table "
            "by CAS as two workers do, without a second one: the CAS's own cost. "
            "\"2 processes\" are two independent 1-worker tally-pipelines at once, one on each "
            "CPU: nothing of Tally's is shared, so their ratio is what this machine gives two "
            "cores (memory, L3, its other tenants), the ceiling for the 2-worker ratio. The "
            "\"median bursts\" rates come from each worker's median burst, which preemption by "
            "other processes on this shared VM does not move. exact: every worker's counters "
            "equal what its datagrams hold. load avg: the machine's 1-minute load average after "
            "each run (2 CPUs; above 2, other processes took turns on the workers' CPUs).\n\n"
            f"Raw runs: `perf/out/bench-{stamp}.json` (not committed).\n")


DRIFT_TITLE = ("## Over a long run: Tally's state or the machine? "
               "(`perf/bench.py --steps drift`)")


def run_drift(a, sc, seconds, slice_s):
    """One 1-worker tally-pipeline run of `seconds`, with worker 0's figures and
    a speed probe of the machine every slice_s seconds."""
    p = subprocess.run(pipeline_cmd(a, sc, seconds, 1, ["-l", "1"], "bdrift",
                                    ["--slice-seconds", str(slice_s)]),
                       capture_output=True, text=True, timeout=seconds + 900)
    slices, r = [], kv(p.stdout)
    for line in p.stdout.splitlines():
        f = line.split()
        if f and f[0] == "slice":
            slices.append({k: float(v) for k, v in zip(f[0::2], f[1::2])})
    if "events_per_sec" not in r or len(slices) < 4:
        return dict(error=(p.stdout + p.stderr)[-500:], slices=slices)
    # a counter that differs from the generator's is a finding, not a lost run
    return dict(slices=slices, load=os.getloadavg()[0], events=r["events"],
                check="check OK" in p.stdout,
                differs=[l[len("check: "):] for l in p.stdout.splitlines()
                         if l.startswith("check: ")])


def corr(xs, ys):
    try:
        return statistics.correlation(xs, ys)
    except (statistics.StatisticsError, AttributeError):
        return float("nan")


def drift_summary(name, runs, edge):
    """First `edge` seconds against the last, per run, and how the worker's
    cycles per event move with the probes across every slice of every run."""
    ok = [r for r in runs if "error" not in r]
    rows = []
    for r in ok:
        sl = r["slices"]
        end = sl[-1]["t"]
        first = [x for x in sl if x["t"] <= edge + 0.5 * (sl[1]["t"] - sl[0]["t"])]
        last = [x for x in sl if x["t"] > end - edge]
        m = lambda xs, k: statistics.median(x[k] for x in xs)
        rows.append({k: (m(first, key), m(last, key)) for k, key in
                     (("cpe", "cycles_per_event_p50"), ("mul", "probe_mul_cycles"),
                      ("hop", "probe_hop_cycles"), ("llc", "probe_llc_hop_cycles"))})
    every = [x for r in ok for x in r["slices"][1:]]  # the first holds the warm-up
    xs = [x["cycles_per_event_p50"] for x in every]
    return dict(scenario=name, runs=rows, exact=all(r["check"] for r in ok) and bool(ok),
                errors=[r["error"] for r in runs if "error" in r],
                differs=[f"run {i + 1} ({r['events']:.0f} events): {d}" for i, r in enumerate(ok)
                         for d in r["differs"]],
                corr_hop=corr(xs, [x["probe_hop_cycles"] for x in every]),
                corr_mul=corr(xs, [x["probe_mul_cycles"] for x in every]),
                corr_llc=corr(xs, [x["probe_llc_hop_cycles"] for x in every]),
                load=med([r["load"] for r in ok]))


def drift_section(a, summary, seconds, slice_s, edge):
    ch = lambda f, l: f"{f:.0f} → {l:.0f} ({100 * (l / f - 1):+.0f}%)"
    lines = [DRIFT_TITLE, "",
             f"Measured {datetime.datetime.now():%Y-%m-%d %H:%M}: `tally-pipeline` (one worker "
             f"on CPU 1, no I/O) for {seconds:.0f} s, {a.runs} runs a scenario, with "
             f"`--slice-seconds {slice_s:g}`: every slice, the worker's median burst's cycles "
             "per event, then on the same CPU a fixed chain of 2^20 dependent multiplies "
             "(TSC cycles: the core's clock as the host gives it), a pointer chase through "
             "256 MiB (TSC cycles a hop: the memory's latency) and one through 8 MiB (a hop "
             "the last-level cache serves, unless another tenant has taken it). First and last "
             f"{edge:.0f} s of each run, medians of their slices:", "",
             "| scen | run | worker cycles/event | multiply chain, cycles | DRAM hop, cycles "
             "| LLC hop, cycles |",
             "|---|---|---|---|---|---|"]
    for s in summary:
        for i, r in enumerate(s["runs"]):
            lines.append(f"| {s['scenario']} | {i + 1} | {ch(*r['cpe'])} | {ch(*r['mul'])} | "
                         f"{ch(*r['hop'])} | {ch(*r['llc'])} |")
    lines += ["", "Across every slice but each run's first (warm-up): correlation of the "
              "worker's cycles per event with the probes, and whether every run's counters "
              "equalled what its datagrams hold:", "",
              "| scen | with DRAM hop | with LLC hop | with multiply chain | check | load average |",
              "|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['scenario']} | {s['corr_hop']:.2f} | {s['corr_llc']:.2f} | "
                     f"{s['corr_mul']:.2f} | "
                     f"{'OK' if s['exact'] else 'FAIL'} | {s['load'][0]:.1f} |")
    for s in summary:
        lines += [f"\n{s['scenario']}, counters against the datagrams: {d}" for d in s["differs"]]
        lines += [f"\nErrors ({s['scenario']}): {e[-200:]}" for e in s["errors"]]
    return "\n".join(lines) + "\n"


def drift(a, names, raw):
    """A long run sliced, alternating scenarios run by run."""
    seconds, slice_s = a.loss_seconds, 5.0
    runs = {n: [] for n in names}
    for i in range(a.runs):
        for name in names:
            print(f"== drift, scenario {name}, run {i}", flush=True)
            r = run_drift(a, SCENARIOS[name], seconds, slice_s)
            runs[name].append(r)
            raw.append(dict(scenario=name, run=i, receiver="pipeline-drift", **r))
            print("   " + " ".join(f"{x['cycles_per_event_p50']:.0f}/{x['probe_hop_cycles']:.0f}"
                                   for x in r.get("slices", [])), flush=True)
    summary = [drift_summary(n, runs[n], 10.0) for n in names]
    text = drift_section(a, summary, seconds, slice_s, 10.0)
    print("\n" + text)
    if not a.quick:
        put_section(a.results_md, DRIFT_TITLE, text)
    return summary


LOSS_TITLE = "## The 90% run alone (`perf/bench.py --steps loss`)"


def loss_step(a, names, raw):
    """Only the 90% runs, each with its references before and after."""
    rows = []
    for name in names:
        print(f"== 90% run, scenario {name}: {SCENARIOS[name]['desc']}", flush=True)
        lr = loss_summary(loss_run(a, name, SCENARIOS[name], None, raw))
        rows.append(f"| {name} | {loss_text(lr)} |")
    text = (f"{LOSS_TITLE}\n\nMeasured {datetime.datetime.now():%Y-%m-%d %H:%M} with "
            f"`{' '.join(sys.argv)}`: per scenario, with CPU 1 cleared and DAMON paused, an "
            f"unpaced run of {a.seconds:.0f} s on the 90% run's ring ({slots(a, ring=True)} "
            f"slots), the paced run of {a.loss_seconds:.0f} s at 90% of its rate, another "
            f"unpaced run, then the machine's own gaps on CPU 1 for {a.loss_seconds:.0f} s.\n\n"
            "| scen | 90% run, paced |\n|---|---|\n" + "\n".join(rows) + "\n")
    print("\n" + text)
    if not a.quick:
        put_section(a.results_md, LOSS_TITLE, text)


def put_section(path, title, text):
    """Replace the section that starts with title (up to the next "## ") or, new,
    put it first among the "## " sections: right after the driver's table."""
    old = open(path).read() if os.path.exists(path) else "# Benchmark results\n"
    at = old.find(title)
    if at < 0:
        at = old.find("\n## ")
        at = len(old) if at < 0 else at + 1
        end = at
    else:
        end = old.find("\n## ", at + len(title))
        end = len(old) if end < 0 else end + 1
    with open(path, "w") as f:
        f.write(old[:at] + text + "\n" + old[end:])


def write_outputs(a, summary, raw, t, gt, two=None):
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    with open(f"{a.out}/bench-{stamp}.json", "w") as f:
        json.dump(dict(machine=machine(a), args=vars(a), summary=summary, two_workers=two,
                       runs=raw), f,
                  indent=1, default=str)
    with open(f"{a.out}/bench-{stamp}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["scenario", "run", "receiver", "offered_mpps", "rx_mpps", "events_per_s",
                    "cycles_per_event", "loss", "exact", "error"])
        for r in raw:
            if r.get("receiver") == "callgrind":
                w.writerow([r["scenario"], r["run"], "callgrind", "", "", "", "", "", r.get("check"),
                            r.get("error")])
                continue
            if r.get("receiver", "").startswith("pipeline-"):  # the two-workers step
                w.writerow([r["scenario"], r["run"], r["receiver"], "", "", r.get("rate"),
                            "/".join(f"{c:.1f}" for c in r.get("cpe", [])), "", r.get("check"),
                            r.get("error")])
                continue
            if r.get("receiver") == "pipeline":
                w.writerow([r["scenario"], r["run"], "pipeline", "", "", r.get("events_per_s"),
                            r.get("cycles_per_event"), "", r.get("check"), r.get("error")])
                continue
            m = metrics(r) if "error" not in r else {}
            w.writerow([r["scenario"], r["run"], r["receiver"], m.get("offered_mpps"),
                        m.get("rx_mpps"), m.get("events_per_s", m.get("lines_per_s")),
                        m.get("cycles_per_event"), m.get("loss"), m.get("exact"), r.get("error")])
    if not a.quick and summary:
        # the driver's part ends at the first "## " section: those (rules, XDP,
        # archive, sinks, design notes) come from other benchmarks and stay
        tail = ""
        if os.path.exists(a.results_md):
            old = open(a.results_md).read()
            at = old.find("\n## ")
            tail = old[at:] if at >= 0 else ""
        with open(a.results_md, "w") as f:
            f.write(f"# Benchmark results\n\nMeasured {datetime.datetime.now():%Y-%m-%d %H:%M} with\n"
                    f"`{' '.join(sys.argv)}` ({a.runs} runs per case, {a.seconds:.0f} s each, "
                    f"alternating tallyd and the null receiver; median [min-max]).\n\n"
                    f"Machine: {machine(a)}.\n\n{t}\n\n"
                    "Columns: received Mpps and events/s are what tallyd took from the port "
                    "(equal to what the generator offered, which retries a full ring); the null "
                    "ceiling is tally-null on the same generator; ratio = Tally / ceiling; "
                    "cycles/event are TSC cycles inside tallyd's worker per event parsed; "
                    "\"Tally alone\" is tally-pipeline, the same frames through the worker's code "
                    "without packet I/O; exact = SQLite totals equal the generator's expected "
                    "totals for every key and window; the 90% run uses tally-gen --paced (a "
                    "frame the ring refuses is dropped and counted, as a NIC would; a generator "
                    "that fell behind its schedule catches up within 1 ms, as a switch's buffer "
                    "drains, and skips what fell further behind rather than burst above the "
                    "rate), so loss counts every frame tallyd did not take; its rate is 90% of "
                    "an unpaced run's right before it on the same ring with CPU 1 cleared "
                    "(--loss-ref before; this VM's speed drifts more than 10% within minutes), "
                    "and a second unpaced run right after says whether the machine held that "
                    "speed; "
                    f"the memif ring, all the RX queue "
                    f"tallyd has to ride out its own pauses with, had "
                    f"{slots(a)} slots, {slots(a, ring=True)} in the 90% "
                    "run, which ran with CPU 1 cleared of every task that may move and DAMON "
                    "paused (`deploy/tally-isolate-cpus --cpus 1 --pause-damon`, unless "
                    "--no-isolate); its busiest second is from `tallyctl stats` read once a "
                    "second (worker cycles over the second's TSC cycles): a worker busy "
                    ">= 95% for longer than the ring covers is too slow for the rate, and "
                    "loses frames whatever the ring.\n\n"
                    "Signals that do not drift (valgrind --tool=callgrind --cache-sim=yes, "
                    "collected inside tally_worker_burst only, on a fixed input of "
                    "tally-pipeline --datagrams N):\n\n" + gt + "\n\n"
                    + ("![results](results.svg)\n\n" if a.svg else "") +
                    f"Raw runs: `perf/out/bench-{stamp}.json` (not committed).\n" + tail)
    if two and not a.quick:
        put_section(a.results_md, TWO_TITLE, two_section(a, two, stamp))
    print(f"\nresults: {a.out}/bench-{stamp}.json, .csv" + ("" if a.quick else f", {a.results_md}"))


def grind_only(a, names):
    """The callgrind table alone: a check of a change's instructions per event
    that takes minutes, with the very options of the full run's grind step."""
    if not shutil.which("valgrind"):
        die("valgrind missing (apt-get install valgrind)")
    a.huge = False
    summary = []
    for name in names:
        os.makedirs(a.out, exist_ok=True)
        g = grind(a, name, SCENARIOS[name], keep=f"{a.out}/callgrind-{name}.out")
        print(f"   {name} callgrind: {json.dumps(g)[:300]}", flush=True)
        summary.append(dict(scenario=name, grind=g))
    print("\n" + grind_table(summary, a.ll))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default="A,B,C,D,D1")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--loss-seconds", type=float, default=60)
    ap.add_argument("--no-grind", action="store_true", help="skip the callgrind table")
    ap.add_argument("--grind-only", action="store_true",
                    help="only the callgrind table (no memif runs), keeping each "
                    "scenario's callgrind.out in --out for callgrind_annotate")
    ap.add_argument("--ll", default=DEFAULT_LL, help="LL cache for callgrind: size,assoc,line")
    ap.add_argument("--no-loss-run", action="store_true")
    ap.add_argument("--loss-ref", choices=("before", "table"), default="before",
                    help="the 90%% run's reference rate: an unpaced run right before it in its "
                    "own conditions (before, the default), or the 10 s runs' median (table)")
    ap.add_argument("--memif-rsize", type=int, default=0,
                    help="log2 of the memif ring's slots (the PMD's default: 10, 1024 slots)")
    ap.add_argument("--loss-rsize", type=int, default=14,
                    help="the same for the 90%% run (default 14: 16,384 slots, memif's largest)")
    ap.add_argument("--no-isolate", action="store_true",
                    help="leave other tasks on the worker's CPU, and DAMON on, in the 90%% run")
    ap.add_argument("--no-hugepages", action="store_true", help="run DPDK with --no-huge")
    ap.add_argument("--quick", action="store_true", help="10x fewer keys, 3 s, 1 run, no loss run")
    ap.add_argument("--out", default=f"{TOP}/perf/out")
    ap.add_argument("--build", default=f"{TOP}/build")
    ap.add_argument("--results-md", default=f"{TOP}/perf/RESULTS.md")
    ap.add_argument("--steps", default="scenarios,two-workers",
                    help="which steps to run: scenarios (memif, pipeline, loss run, callgrind), "
                         "two-workers, drift, loss (only the 90%% runs of --scenarios)")
    ap.add_argument("--two-workers-scenarios", default="A,B")
    ap.add_argument("--drift-scenarios", default="A,B")
    a = ap.parse_args()
    steps = a.steps.split(",")
    if set(steps) - {"scenarios", "two-workers", "drift", "loss"}:
        die(f"unknown step(s) in {a.steps}: choose from scenarios,two-workers,drift,loss")
    if "scenarios" not in steps:
        a.no_grind = True
    for b in ("ctrlplane/tallyd", "perf/tally-gen", "perf/tally-null", "perf/tally-pipeline"):
        if not os.access(f"{a.build}/{b}", os.X_OK):
            die(f"{a.build}/{b} missing: build first (ninja -C build)")
    names = a.scenarios.split(",") if "scenarios" in steps else []
    two_names = a.two_workers_scenarios.split(",") if "two-workers" in steps else []
    drift_names = a.drift_scenarios.split(",") if "drift" in steps else []
    loss_names = a.scenarios.split(",") if "loss" in steps else []
    if loss_names and a.loss_ref == "table":
        die("--steps loss has no 10 s runs to take the rate from: --loss-ref table needs "
            "--steps scenarios")
    unknown = [n for n in names + two_names + drift_names + loss_names if n not in SCENARIOS]
    if unknown:
        die(f"unknown scenario(s) {','.join(unknown)}: choose from {','.join(SCENARIOS)}")
    if a.grind_only:
        return grind_only(a, names)
    if a.quick:
        a.runs, a.seconds, a.no_loss_run, a.no_grind = 1, 3, True, True
        for sc in SCENARIOS.values():
            for flag, div in (("--keys", 10), ("--pool", 16)):
                i = sc["gen"].index(flag)
                sc["gen"][i + 1] = str(max(1024, int(sc["gen"][i + 1]) // div))
            sc["rows"] //= 8
    if not a.no_grind and not shutil.which("valgrind"):
        die("valgrind missing (apt-get install valgrind), or give --no-grind")
    a.huge = setup_hugepages(a)
    os.makedirs(a.out, exist_ok=True)
    summary, raw, two = [], [], []
    signal.signal(signal.SIGTERM, lambda *_: (kill_all(), sys.exit(1)))
    try:
        for name in names:
            summary.append(run_scenario(a, name, SCENARIOS[name], raw))
        two = two_workers(a, two_names, raw)
        if drift_names:
            drift(a, drift_names, raw)
        if loss_names:
            loss_step(a, loss_names, raw)
    finally:
        kill_all()
    t, gt = table(summary), grind_table(summary, a.ll)
    print("\n" + (t + "\n\n" + gt if summary else "") + (two_table(two) if two else ""))
    a.svg = bool(summary) and not a.quick and plot(
        summary, os.path.join(os.path.dirname(a.results_md), "results.svg"))
    write_outputs(a, summary, raw, t, gt, two)


if __name__ == "__main__":
    main()
