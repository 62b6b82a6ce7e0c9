#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Real StatsD clients, and an independent check of what tallyd stored.

  statsd_clients.py send-py PORT      Debian's python3-aiodogstatsd sends every
                                      type it has (c g ms h d), tags, rates;
                                      raw lines add |T and relative gauges
  statsd_clients.py fix-csum IN OUT   the capture with full UDP checksums: on lo,
                                      Linux leaves the UDP checksum as the partial
                                      (pseudo-header) sum a NIC would complete, so
                                      the frames recorded there fail tallyd's check
  statsd_clients.py write-pcap OUT PORT LINE...
                                      one IPv4/UDP frame per LINE to 127.0.0.1:PORT
  statsd_clients.py expect PCAP DB WINDOW_MS
                                      reads the capture on its own (pcap, Ethernet
                                      or Linux cooked, IPv4/IPv6, UDP), aggregates
                                      every line as DESIGN.md says, and compares
                                      with tally_counts (exact) and tally_sketches
                                      (percentiles within 1% of the exact ones,
                                      distinct counts within 3 x 0.81%)
The Node client (hot-shots) is driven by statsd_clients.js.
"""
import asyncio
import math
import socket
import sqlite3
import struct
import sys
import time


async def send_py(port):
    import aiodogstatsd
    c = aiodogstatsd.Client(host="127.0.0.1", port=port, constant_tags={"lib": "py"})
    await c.connect()
    for i in range(400):
        c.increment("py.hits", tags={"route": "/a"})
        c.increment("py.sampled", value=3, sample_rate=0.5)  # the client may skip some
        c.gauge("py.temp", value=20 + i % 7, tags={"room": "b"})
        c.timing("py.lat", value=1 + (i * 37) % 500, tags={"route": "/a"})
        c.histogram("py.size", value=(i * 7919) % 10000 / 7.0)
        c.distribution("py.dist", value=math.exp((i % 50) / 10.0), sample_rate=0.25)
        if i % 50 == 0:
            await asyncio.sleep(0.01)  # let the queue drain: UDP on loopback can drop
    await c.close()


def send_raw(port):
    """What the stock Python client cannot send: sets, relative gauges, |T."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    now = int(time.time())
    lines = ["raw.users:u%d|s|#lib:raw" % (i % 300) for i in range(900)]
    lines += ["raw.q:50|g", "raw.q:+5|g", "raw.q:-2|g"]
    lines += ["raw.t:%d|ms|T%d|#lib:raw" % (i, now) for i in range(100)]
    for k in range(0, len(lines), 20):
        s.sendto("\n".join(lines[k:k + 20]).encode(), ("127.0.0.1", port))
        time.sleep(0.001)


# ---- the independent reader ----

def pcap_payloads(path):
    data = open(path, "rb").read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if linktype == 1:  # Ethernet
            et, p = struct.unpack(">H", frame[12:14])[0], 14
        elif linktype == 113:  # Linux cooked
            et, p = struct.unpack(">H", frame[14:16])[0], 16
        else:
            raise SystemExit("linktype %d not read here" % linktype)
        if et == 0x0800:
            ihl = (frame[p] & 15) * 4
            if frame[p + 9] != 17:
                continue
            p += ihl
        elif et == 0x86DD:
            if frame[p + 6] != 17:
                continue
            p += 40
        else:
            continue
        ulen = struct.unpack(">H", frame[p + 4:p + 6])[0]
        yield frame[p + 8:p + ulen]


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def fix_csum(src, dst):
    """Ethernet + IPv4 + UDP frames: the UDP checksum recomputed in place."""
    data = bytearray(open(src, "rb").read())
    off, fixed = 24, 0
    while off + 16 <= len(data):
        incl = struct.unpack("<I", data[off + 8:off + 12])[0]
        f = off + 16
        off += 16 + incl
        if struct.unpack(">H", data[f + 12:f + 14])[0] != 0x0800 or data[f + 23] != 17:
            continue
        ip = f + 14
        u = ip + (data[ip] & 15) * 4
        ulen = struct.unpack(">H", data[u + 4:u + 6])[0]
        data[u + 6:u + 8] = b"\0\0"
        pseudo = bytes(data[ip + 12:ip + 20]) + struct.pack(">BBH", 0, 17, ulen)
        c = csum(pseudo + bytes(data[u:u + ulen])) or 0xFFFF
        data[u + 6:u + 8] = struct.pack(">H", c)
        fixed += 1
    open(dst, "wb").write(data)
    print("ok: %d UDP checksums completed" % fixed)


def write_pcap(dst, port, lines):
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i, line in enumerate(lines):
        payload = line.encode()
        udp = struct.pack(">HHHH", 40000, port, 8 + len(payload), 0) + payload
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i, 0, 64, 17, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
        ip = ip[:10] + struct.pack(">H", csum(ip)) + ip[12:]
        pseudo = ip[12:20] + struct.pack(">BBH", 0, 17, len(udp))
        udp = udp[:6] + struct.pack(">H", csum(pseudo + udp) or 0xFFFF) + udp[8:]
        frame = b"\0" * 12 + b"\x08\x00" + ip + udp
        out.append(struct.pack("<IIII", 1700000000 + i, 0, len(frame), len(frame)) + frame)
    open(dst, "wb").write(b"".join(out))


def canonical(name, typ, tags):
    key = name + "|" + typ
    if tags:
        key += "|#" + ",".join(sorted(set(t for t in tags if t)))
    return key


def aggregate(path, window_ms, arrival_ms):
    rows, values, members, gauge = {}, {}, {}, {}
    for payload in pcap_payloads(path):
        for line in payload.decode().split("\n"):
            line = line.rstrip("\r")
            if not line:
                continue
            name, rest = line.split(":", 1)
            parts = rest.split("|")
            val, typ, tags, rate, t = parts[0], parts[1], [], 1.0, arrival_ms
            for f in parts[2:]:
                if f.startswith("#"):
                    tags = f[1:].split(",")
                elif f.startswith("@"):
                    rate = float(f[1:])
                elif f.startswith("T"):
                    t = int(f[1:]) * 1000
            key = canonical(name, typ, tags)
            win = t // window_ms * window_ms
            rel = typ == "g" and val[0] in "+-"
            if typ == "s":
                v = 1.0
                members.setdefault((key, win), set()).add(val)
            elif rel:
                v = gauge.get(key, 0.0) + float(val)
            else:
                v = float(val) / rate if typ == "c" else float(val)
            if typ == "g":
                gauge[key] = v
            if typ in ("ms", "h", "d"):
                values.setdefault((key, win), []).append(v)
            r = rows.get((key, win))
            if r is None:
                rows[(key, win)] = [1, v, v, v, v]
            else:
                r[0] += 1
                r[1] += v
                r[2] = min(r[2], v)
                r[3] = max(r[3], v)
                r[4] = v
    return rows, values, members


def expect(pcap, db, window_ms):
    h = sqlite3.connect(db)
    stored = {(k, w): (c, s, mn, mx, l) for k, w, c, s, mn, mx, l in h.execute(
        "SELECT key, window_start_ms, count, sum, min, max, last FROM tally_counts")}
    # arrival time: only lines without |T need it, and the capture spans one window
    # at most as sent (the test waits for a fresh window first); take it from the db
    arrival = {w for (k, w) in stored if not k.startswith("raw.t")}
    if len(arrival) != 1:
        raise SystemExit("FAIL: lines without |T span windows %s" % sorted(arrival))
    rows, values, members = aggregate(pcap, window_ms, next(iter(arrival)))
    bad = 0
    for kw, (c, s, mn, mx, l) in sorted(rows.items()):
        got = stored.pop(kw, None)
        want = (c, s, mn, mx, l)
        if got is None or got[0] != c or abs(got[1] - s) > 1e-9 * max(1, abs(s)) or \
                got[2:] != want[2:]:
            print("FAIL: %s: stored %s, expected %s" % (kw, got, want))
            bad += 1
    for kw in stored:
        print("FAIL: %s stored but never sent" % (kw,))
        bad += 1
    sk = {(k, w): r for k, w, *r in h.execute(
        "SELECT key, window_start_ms, kind, p50, p90, p95, p99, p999, distinct_estimate "
        "FROM tally_sketches")}
    for kw, vs in values.items():
        vs.sort()
        got = sk.get(kw)
        for i, q in enumerate((0.5, 0.9, 0.95, 0.99, 0.999)):
            exact = vs[int(math.floor(q * (len(vs) - 1)))]
            if got is None or abs(got[1 + i] - exact) > 0.01 * 1.000001 * abs(exact):
                print("FAIL: %s p%g: stored %s, exact %s" % (kw, q * 100, got, exact))
                bad += 1
    for kw, m in members.items():
        got = sk.get(kw)
        if got is None or abs(got[6] - len(m)) > 3 * 0.0081 * len(m) + 0.5:
            print("FAIL: %s distinct: stored %s, exact %d" % (kw, got, len(m)))
            bad += 1
    if bad:
        raise SystemExit("FAIL: %d mismatches" % bad)
    print("ok: %d rows exact, %d sketches within 1%%, %d sets within 2.43%%" %
          (len(rows), len(values), len(members)))
    types = {k.split("|")[1] for k, _ in rows}
    if not {"c", "g", "ms", "h", "d", "s"} <= types:
        raise SystemExit("FAIL: the capture lacks types: %s" % types)


if __name__ == "__main__":
    if sys.argv[1] == "send-py":
        asyncio.run(send_py(int(sys.argv[2])))
        send_raw(int(sys.argv[2]))
    elif sys.argv[1] == "write-pcap":
        write_pcap(sys.argv[2], int(sys.argv[3]), sys.argv[4:])
    elif sys.argv[1] == "fix-csum":
        fix_csum(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "expect":
        expect(sys.argv[2], sys.argv[3], int(sys.argv[4]))
