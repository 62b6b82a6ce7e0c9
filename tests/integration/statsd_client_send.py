#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# StatsD from a stock client library, as an application would send it: Debian's
# python3-aiodogstatsd (asyncio, one datagram per metric, DogStatsD tags), run
# by Debian's own /usr/bin/python3 (the package installs there only).
#   statsd_client_send.py HOST PORT --metrics N --expect FILE [--window-ms MS]
# Sends N counters over 3 names with tags, and N timings, and appends the
# totals Tally must store to FILE (tally-check's format). The client sets no
# timestamp, so events land in the window of their arrival: the sender waits
# out the last 5 s of a window rather than let its events straddle two.
import argparse
import asyncio
import time

from aiodogstatsd import Client


def canonical(name, type_, tags):
    # Tally's key: <name>|<type>[|#tags], tags sorted bytewise (parse_statsd.c).
    t = sorted(f"{k}:{v}" for k, v in tags.items())
    return f"{name}|{type_}" + (f"|#{','.join(t)}" if t else "")


async def send(host, port, n, totals):
    async with Client(host=host, port=port) as c:
        for i in range(1, n + 1):
            tags = {"env": "xdp", "shard": str(i % 3)}
            c.increment("client.hits", value=i, tags=tags)
            add(totals, canonical("client.hits", "c", tags), i)
            c.timing("client.latency", value=i % 17 + 1)
            add(totals, canonical("client.latency", "ms", {}), i % 17 + 1)
            if i % 50 == 0:
                await asyncio.sleep(0.01)  # let the client's queue drain to the socket
        await asyncio.sleep(0.2)


def add(totals, key, v):
    c, s, lo, hi = totals.get(key, (0, 0, v, v))
    totals[key] = (c + 1, s + v, min(lo, v), max(hi, v))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--metrics", type=int, default=300)
    ap.add_argument("--window-ms", type=int, default=3600000)
    ap.add_argument("--expect", required=True)
    a = ap.parse_args()
    while int(time.time() * 1000) % a.window_ms > a.window_ms - 5000:
        time.sleep(0.5)
    start = int(time.time() * 1000) // a.window_ms * a.window_ms
    totals = {}
    asyncio.run(send(a.host, a.port, a.metrics, totals))
    if int(time.time() * 1000) // a.window_ms * a.window_ms != start:
        raise SystemExit("statsd_client_send: the sending crossed a window boundary")
    with open(a.expect, "a") as f:
        for k, (c, s, lo, hi) in sorted(totals.items()):
            f.write(f"{k}\t{start}\t{a.window_ms}\t{c}\t{s}\t{lo}\t{hi}\n")
    print(f"statsd_client_send: {2 * a.metrics} metrics, {len(totals)} keys")


if __name__ == "__main__":
    main()
