#!/usr/bin/env python3
# ack_pcap.py ACKS.pcap: read the TLA1 acks tallyd wrote to a tx_pcap and
# print, per line, "status sender_id batch_seq dst_mac dport"; exit 1 if any
# frame is not a well-formed ack (magic, length, IPv4 header checksum, UDP
# checksum), naming the frame.
import struct, sys

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return s

def frames(path):
    d = open(path, "rb").read()
    off = 24
    while off < len(d):
        _, _, incl, _ = struct.unpack_from("<IIII", d, off)
        yield d[off + 16:off + 16 + incl]
        off += 16 + incl

def parse(f):
    et, off = struct.unpack_from("!H", f, 12)[0], 14
    while et in (0x8100, 0x88a8):
        et, off = struct.unpack_from("!H", f, off + 2)[0], off + 4
    if et == 0x0800:
        ip = f[off:off + 20]
        assert csum(ip) == 0xffff, "bad IPv4 checksum"
        src, dst, l4 = ip[12:16], ip[16:20], f[off + 20:]
    elif et == 0x86dd:
        src, dst, l4 = f[off + 8:off + 24], f[off + 24:off + 40], f[off + 40:]
    else:
        raise AssertionError("ethertype %#x" % et)
    sport, dport, ulen, _ = struct.unpack_from("!HHHH", l4)
    assert ulen == 32, "UDP length %d" % ulen
    pseudo = src + dst + struct.pack("!HH", 17, ulen)
    assert csum(pseudo + l4[:ulen]) == 0xffff, "bad UDP checksum"
    p = l4[8:ulen]
    assert p[:4] == b"TLA1", "magic"
    st, sender, seq = p[4], *struct.unpack_from("<QQ", p, 8)
    return st, sender, seq, f[0:6].hex(":"), dport

bad = 0
for i, f in enumerate(frames(sys.argv[1])):
    try:
        print(*parse(f))
    except (AssertionError, struct.error) as e:
        print("frame %d: %s" % (i, e), file=sys.stderr)
        bad += 1
sys.exit(1 if bad else 0)
