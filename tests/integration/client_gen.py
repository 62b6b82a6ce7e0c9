#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
# Input for the client tests: N events as tally-send lines (CSV, every 1000th
# as JSON, a quoted key with a comma, a non-ASCII key), 100 lines with explicit
# ids sent twice (the second copy must be deduplicated by tallyd), and a few
# bad lines of each kind. Writes the lines to OUT and the totals tally-check
# expects (each explicit id counted once) to EXPECT.
#   client_gen.py N OUT EXPECT --time-ms T --window-ms W [--bad]
import argparse
import json

ap = argparse.ArgumentParser()
ap.add_argument("n", type=int)
ap.add_argument("out")
ap.add_argument("expect")
ap.add_argument("--time-ms", type=int, required=True)
ap.add_argument("--window-ms", type=int, default=60000)
ap.add_argument("--keys", type=int, default=1000)
ap.add_argument("--prefix", default="c.k")
ap.add_argument("--bad", action="store_true")
a = ap.parse_args()

BAD = ["nocomma", "k,notanumber", "k,1,-5", ",1", '{"key":"x"}',
       '{"key":"x","value":1,"bogus":2}', '"unterminated,1', "k,99999999999999999999",
       "k,1,2,3,4", "{not json"]
totals = {}


def count(key, value, t):
    ws = t // a.window_ms * a.window_ms
    r = totals.setdefault((key, ws), [0, 0, value, value])
    r[0] += 1
    r[1] += value
    r[2] = min(r[2], value)
    r[3] = max(r[3], value)


def csv_key(k):
    return '"' + k.replace('"', '""') + '"' if ("," in k or '"' in k) else k


twice = []
with open(a.out, "w", encoding="utf-8") as f:
    for i in range(a.n):
        key = f"{a.prefix}{i % a.keys}"
        if i % 997 == 5:
            key = 'q,"quoted"'
        elif i % 991 == 7:
            key = "ü.straße"
        value = (i * 7919) % 201 - 100
        t = a.time_ms - (i % 5) * a.window_ms
        count(key, value, t)
        if 100 <= i < 200:  # an explicit id, and the same event again at the end
            line = f"{csv_key(key)},{value},{t},{10**15 + i}"
            twice.append(line)
        elif i % 1000 == 3:
            line = json.dumps({"key": key, "value": value, "time": t}, ensure_ascii=False)
        else:
            line = f"{csv_key(key)},{value},{t}"
        f.write(line + "\n")
        if a.bad and i % (a.n // len(BAD) + 1) == 11:
            f.write(BAD[i // (a.n // len(BAD) + 1)] + "\n")
    for line in twice:
        f.write(line + "\n")
with open(a.expect, "w", encoding="utf-8") as f:
    f.write("key\twindow_start_ms\twindow_ms\tcount\tsum\tmin\tmax\n")
    for (k, ws), (c, s, mn, mx) in sorted(totals.items()):
        f.write(f"{k}\t{ws}\t{a.window_ms}\t{c}\t{s}\t{mn}\t{mx}\n")
