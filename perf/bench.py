#!/usr/bin/env python3
"""Tally benchmark driver: tally-gen -> net_memif -> tallyd (or tally-null, the
packet-I/O ceiling), scenarios A-D of issue 4, runs alternating Tally and the null
receiver, median and range of each. Prints a table, writes JSON and CSV to --out
and perf/RESULTS.md with the machine description.

  perf/bench.py [--scenarios A,B,C,D] [--runs 3] [--seconds 10] [--loss-seconds 30]
                [--no-loss-run] [--quick] [--out DIR] [--build DIR]

Generator on cpu 0; receiver worker on cpu 1 (tallyd's main lcore and flusher share
cpu 0 with the generator). Memif moves packets by copy, and the generator retries
a full ring, so the offered rate follows what the receiver takes: loss shows as
generator tx failures, NIC-style drops as imissed/rx_nombuf.
"""
import argparse, csv, datetime, json, os, platform, re, shutil, signal, statistics
import subprocess, sys, tempfile, time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMON = ["--dup-rate", "0.05", "--malformed-rate", "0.01"]
SCENARIOS = {
    "A": dict(desc="TLY1, 1 event/datagram, 1M keys uniform", unit="Mpps",
              gen=["--proto", "tly1", "--events-per-dgram", "1", "--keys", "1000000",
                   "--pool", "1048576"], rows=4194304, target=("mpps", 8.0)),
    "B": dict(desc="TLY1, 32 events/datagram, 1M keys Zipf(1.1)", unit="events/s",
              gen=["--proto", "tly1", "--events-per-dgram", "32", "--keys", "1000000",
                   "--dist", "zipf", "--zipf-s", "1.1", "--pool", "65536"],
              rows=4194304, target=("events", 20e6)),
    "C": dict(desc="TLY1, 32 events/datagram, 10M keys uniform", unit="events/s",
              gen=["--proto", "tly1", "--events-per-dgram", "32", "--keys", "10000000",
                   "--pool", "524288"], rows=8388608, target=("events", 10e6)),
    "D": dict(desc="StatsD, 20 lines/datagram, 100k names with tags", unit="lines/s",
              gen=["--proto", "statsd", "--events-per-dgram", "20", "--keys", "100000",
                   "--pool", "65536"], rows=1048576, target=("events", 10e6)),
}
EAL = ["--no-huge", "--no-pci", "--log-level=*:warning"]
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


def gen_cmd(a, sc, tmp, sock, seconds, rate, expected):
    cmd = [f"{a.build}/perf/tally-gen"] + sc["gen"] + COMMON + [
        "--duration", str(seconds), "--rate", str(int(rate)), "--linger", "120",
        "--window-ms", "10000", "--flows", "64",
        "--port", f"net_memif0,role=client,socket={sock},socket-abstract=no"]
    if expected:
        cmd += ["--expected", f"{tmp}/expected.tsv"]
    return cmd + ["--", "-l", "0", "-m", "4096", "--file-prefix", "bgen"] + EAL


def run_receiver(a, name, sc, seconds, rate=0, check=True):
    tmp = tempfile.mkdtemp(prefix="tally-bench.")
    sock, ctl = f"{tmp}/memif.sock", f"{tmp}/ctl.sock"
    rlog, glog = open(f"{tmp}/recv.txt", "w+"), open(f"{tmp}/gen.txt", "w+")
    dev = f"net_memif0,role=server,socket={sock},socket-abstract=no"
    try:
        if name == "tally":
            recv = spawn([f"{a.build}/ctrlplane/tallyd", "--port", dev, "--sqlite_path",
                          f"{tmp}/tally.db", "--ctl_socket", ctl, "--dedup_capacity", "50000000",
                          "--table_rows", str(sc["rows"]), "--stop_after_idle_ms", "2000",
                          "--", "--lcores", "0@0,1@1", "-m", "1024", "--file-prefix", "brecv"]
                         + EAL, rlog)
            wait_for(lambda: os.path.exists(ctl) or recv.poll() is not None, 120, "tallyd")
        else:
            recv = spawn([f"{a.build}/perf/tally-null", "--duration", str(seconds + 4),
                          "--port", dev, "--", "-l", "1", "-m", "1024", "--file-prefix", "brecv"]
                         + EAL, rlog)
            wait_for(lambda: os.path.exists(sock) or recv.poll() is not None, 60, "tally-null")
        if recv.poll() is not None:
            raise RuntimeError(f"{name} exited early")
        gen = spawn(gen_cmd(a, sc, tmp, sock, seconds, rate, name == "tally" and check), glog)
        wait_for(lambda: "events_per_sec" in open(f"{tmp}/gen.txt").read() or gen.poll() is not None,
                 seconds + 600, "the generator's report")
        rss = peak_rss_mb(recv.pid)
        recv.wait(timeout=600)
        gen.wait(timeout=130)
        g, r = kv(open(f"{tmp}/gen.txt").read()), kv(open(f"{tmp}/recv.txt").read())
        res = dict(receiver=name, gen=g, recv=r, rss_mb=rss, exact=None)
        if name == "tally" and check:
            c = subprocess.run([f"{TOP}/perf/tally-check", f"{tmp}/expected.tsv", f"{tmp}/tally.db"],
                               capture_output=True, text=True, timeout=1200)
            res["exact"] = c.returncode == 0
            res["check"] = c.stdout.strip().splitlines()[-1:] if c.stdout else c.stderr.strip()
        return res
    except Exception as e:  # keep the other runs going; say what broke
        kill_all()
        tail = open(f"{tmp}/recv.txt").read()[-1500:]
        return dict(receiver=name, error=str(e), recv_tail=tail)
    finally:
        kill_all()
        shutil.rmtree(tmp, ignore_errors=True)


def metrics(res, seconds):
    g, r = res["gen"], res["recv"]
    secs = g.get("seconds", seconds) or seconds
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
                loss=g["datagrams_sent"] - r.get("rx_packets", 0) + g.get("frames_tx_failed", 0),
                imissed=r.get("port_imissed", 0), nombuf=r.get("port_rx_nombuf", 0),
                table_full=r.get("drop_table_full", 0), seal_deferred=r.get("seal_deferred", 0),
                rss_mb=res["rss_mb"], exact=res["exact"])


def med(vals):
    vals = [v for v in vals if v is not None]
    return (statistics.median(vals), min(vals), max(vals)) if vals else (0, 0, 0)


def machine():
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                  if l.startswith("model name")), platform.processor())
    mem = next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))
    dpdk = subprocess.run(["pkg-config", "--modversion", "libdpdk"], capture_output=True,
                          text=True).stdout.strip()
    thp = open("/sys/kernel/mm/transparent_hugepage/enabled").read().strip()
    return (f"{model}, {os.cpu_count()} cores, {int(mem) // 1024 // 1024} GiB, kernel "
            f"{platform.release()}, DPDK {dpdk}, --no-huge (THP for tallyd's tables: {thp})")


def fmt(t):
    return f"{t[0]:.2f} [{t[1]:.2f}-{t[2]:.2f}]"


def summarize(name, sc, tally, null, loss):
    tm = [metrics(r, 0) for r in tally if "error" not in r]
    nm = [metrics(r, 0) for r in null if "error" not in r]
    rx, ceil = med([m["rx_mpps"] for m in tm]), med([m["rx_mpps"] for m in nm])
    key = "lines_per_s" if name == "D" else "events_per_s"
    ev = med([m[key] / 1e6 for m in tm])
    s = dict(scenario=name, desc=sc["desc"], runs=len(tm), null_runs=len(nm),
             offered_mpps=med([m["offered_mpps"] for m in tm]), rx_mpps=rx,
             mevents_per_s=ev, null_mpps=ceil, ratio=rx[0] / ceil[0] if ceil[0] else 0,
             cycles_per_event=med([m["cycles_per_event"] for m in tm]),
             imissed=sum(m["imissed"] for m in tm), nombuf=sum(m["nombuf"] for m in tm),
             table_full=sum(m["table_full"] for m in tm), rss_mb=max([m["rss_mb"] for m in tm] or [0]),
             exact=all(m["exact"] for m in tm) if tm else False,
             errors=[r["error"] for r in tally + null if "error" in r])
    if loss:
        lm = metrics(loss, 0) if "error" not in loss else None
        s["loss_run"] = dict(rate_mpps=loss.get("rate", 0) / 1e6, loss=lm and lm["loss"],
                             exact=lm and lm["exact"], error=loss.get("error"))
    kind, goal = sc["target"]
    got = rx[0] if kind == "mpps" else ev[0] * 1e6
    if kind == "mpps":
        goal = min(goal, 0.8 * ceil[0]) if ceil[0] else goal
    s["target"] = dict(goal=goal, got=got, met=got >= goal,
                       short_by_pct=0 if got >= goal else 100 * (1 - got / goal))
    return s


def table(summary):
    hdr = ("| scen | offered Mpps | received Mpps | M events/s (per worker core) | null ceiling Mpps "
           "| ratio | cycles/event | imissed | nombuf | table_full | peak RSS MB | exact | 90% run | target |")
    lines = [hdr, "|" + "---|" * 14]
    for s in summary:
        lr = s.get("loss_run")
        lrt = (f"{lr['rate_mpps']:.2f} Mpps: loss {lr['loss']:.0f}, exact {lr['exact']}"
               if lr and lr.get("error") is None and lr["loss"] is not None else "-")
        t = s["target"]
        tt = "met" if t["met"] else f"missed by {t['short_by_pct']:.0f}%"
        lines.append(f"| {s['scenario']} | {fmt(s['offered_mpps'])} | {fmt(s['rx_mpps'])} | "
                     f"{fmt(s['mevents_per_s'])} | {fmt(s['null_mpps'])} | {s['ratio']:.2f} | "
                     f"{s['cycles_per_event'][0]:.0f} | {s['imissed']:.0f} | {s['nombuf']:.0f} | "
                     f"{s['table_full']:.0f} | {s['rss_mb']:.0f} | {s['exact']} | {lrt} | {tt} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default="A,B,C,D")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--loss-seconds", type=float, default=30)
    ap.add_argument("--no-loss-run", action="store_true")
    ap.add_argument("--quick", action="store_true", help="10x fewer keys, 3 s, 1 run, no loss run")
    ap.add_argument("--out", default=f"{TOP}/perf/out")
    ap.add_argument("--build", default=f"{TOP}/build")
    ap.add_argument("--results-md", default=f"{TOP}/perf/RESULTS.md")
    a = ap.parse_args()
    for b in ("ctrlplane/tallyd", "perf/tally-gen", "perf/tally-null"):
        if not os.access(f"{a.build}/{b}", os.X_OK):
            die(f"{a.build}/{b} missing: build first (ninja -C build)")
    if a.quick:
        a.runs, a.seconds, a.no_loss_run = 1, 3, True
        for sc in SCENARIOS.values():
            i = sc["gen"].index("--keys")
            sc["gen"][i + 1] = str(int(sc["gen"][i + 1]) // 10)
    os.makedirs(a.out, exist_ok=True)
    summary, raw = [], []
    signal.signal(signal.SIGTERM, lambda *_: (kill_all(), sys.exit(1)))
    try:
        for name in a.scenarios.split(","):
            sc = SCENARIOS[name]
            print(f"== scenario {name}: {sc['desc']}", flush=True)
            tally, null = [], []
            for i in range(a.runs):
                for recv, acc in (("tally", tally), ("null", null)):
                    r = run_receiver(a, recv, sc, a.seconds)
                    acc.append(r)
                    raw.append(dict(scenario=name, run=i, **r))
                    m = metrics(r, a.seconds) if "error" not in r else r
                    print(f"   {recv:5} run {i}: {json.dumps(m, default=str)[:300]}", flush=True)
            loss = None
            good = [metrics(r, 0)["rx_mpps"] for r in tally if "error" not in r]
            if not a.no_loss_run and good:
                rate = 0.9 * statistics.median(good) * 1e6
                loss = run_receiver(a, "tally", sc, a.loss_seconds, rate=rate)
                loss["rate"] = rate
                raw.append(dict(scenario=name, run="loss90", **loss))
                print(f"   90% run at {rate / 1e6:.2f} Mpps: "
                      f"{json.dumps(metrics(loss, 0) if 'error' not in loss else loss, default=str)[:300]}")
            summary.append(summarize(name, sc, tally, null, loss))
    finally:
        kill_all()
    t = table(summary)
    print("\n" + t)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    with open(f"{a.out}/bench-{stamp}.json", "w") as f:
        json.dump(dict(machine=machine(), args=vars(a), summary=summary, runs=raw), f, indent=1,
                  default=str)
    with open(f"{a.out}/bench-{stamp}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["scenario", "run", "receiver", "offered_mpps", "rx_mpps", "events_per_s",
                    "cycles_per_event", "loss", "exact", "error"])
        for r in raw:
            m = metrics(r, a.seconds) if "error" not in r else {}
            w.writerow([r["scenario"], r["run"], r["receiver"], m.get("offered_mpps"),
                        m.get("rx_mpps"), m.get("events_per_s", m.get("lines_per_s")),
                        m.get("cycles_per_event"), m.get("loss"), m.get("exact"), r.get("error")])
    if not a.quick:
        with open(a.results_md, "w") as f:
            f.write(f"# Benchmark results\n\nMeasured {datetime.datetime.now():%Y-%m-%d %H:%M} with\n"
                    f"`{' '.join(sys.argv)}` ({a.runs} runs per case, {a.seconds:.0f} s each, "
                    f"alternating tallyd and the null receiver; median [min-max]).\n\n"
                    f"Machine: {machine()}.\n\n{t}\n\nRaw runs: `{a.out}/bench-{stamp}.json`.\n")
    print(f"\nresults: {a.out}/bench-{stamp}.json, .csv" + ("" if a.quick else f", {a.results_md}"))


if __name__ == "__main__":
    main()
