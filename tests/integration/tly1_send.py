#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
# A plain kernel-UDP TLY1 sender for the namespace tests: DATAGRAMS datagrams of
# EVENTS events each, keys PREFIX0..PREFIX{KEYS-1}, from SRC to DST:PORT, event
# time TIME_MS, unique event ids from ID0. With --expect FILE it appends the
# totals tally-check expects (key, window_start_ms, window_ms, count, sum, min, max).
import argparse
import socket
import struct

ap = argparse.ArgumentParser()
ap.add_argument("src"), ap.add_argument("dst"), ap.add_argument("port", type=int)
ap.add_argument("--datagrams", type=int, default=100)
ap.add_argument("--events", type=int, default=10)
ap.add_argument("--keys", type=int, default=5)
ap.add_argument("--prefix", default="xdp.k")
ap.add_argument("--time-ms", type=int, required=True)
ap.add_argument("--window-ms", type=int, default=3600000)
ap.add_argument("--id0", type=int, default=1)
ap.add_argument("--expect")
a = ap.parse_args()

fam = socket.AF_INET6 if ":" in a.dst else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.bind((a.src, 0))
totals = {}
eid = a.id0
for d in range(a.datagrams):
    body = b""
    for e in range(a.events):
        key = f"{a.prefix}{eid % a.keys}".encode()
        value = eid % 11
        body += struct.pack("<QQqB", eid, a.time_ms, value, len(key)) + key
        t = totals.setdefault(key.decode(), [0, 0, None, None])
        t[0] += 1
        t[1] += value
        t[2] = value if t[2] is None else min(t[2], value)
        t[3] = value if t[3] is None else max(t[3], value)
        eid += 1
    hdr = b"TLY1" + struct.pack("<BBHQQ", 0, 0, a.events, 0x5EED, d + 1)
    s.sendto(hdr + body, (a.dst, a.port))
if a.expect:
    ws = a.time_ms // a.window_ms * a.window_ms
    import os
    new = not os.path.exists(a.expect)
    with open(a.expect, "a") as f:
        if new:
            f.write("key\twindow_start_ms\twindow_ms\tcount\tsum\tmin\tmax\n")
        for k, (c, sm, mn, mx) in sorted(totals.items()):
            f.write(f"{k}\t{ws}\t{a.window_ms}\t{c}\t{sm}\t{mn}\t{mx}\n")
