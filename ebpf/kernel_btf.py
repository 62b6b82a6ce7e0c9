#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
# Helpers of ebpf/verify_kernel.sh, each a subcommand:
#   extract VMLINUZ OUT    the vmlinux inside a bzImage (its xz payload)
#   check VMLINUX OBJ      OBJ's helper calls and map types exist in that
#                          kernel's BTF (enum bpf_func_id, enum bpf_map_type);
#                          OBJ calls no kfunc and no BPF subprogram
#   cpio DIR OUT           DIR as an uncompressed newc initramfs
# The BTF is read through bpftool's raw dump, so this parses text, not BTF.
import lzma
import os
import re
import stat
import subprocess
import sys


def extract(vmlinuz, out):
    data = open(vmlinuz, "rb").read()
    pos = data.find(b"\xfd7zXZ\x00")
    if pos < 0:
        sys.exit(f"kernel_btf: {vmlinuz}: no xz payload (CONFIG_KERNEL_XZ expected)")
    d = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    elf = d.decompress(data[pos:])
    if elf[:4] != b"\x7fELF":
        sys.exit(f"kernel_btf: {vmlinuz}: the xz payload is not an ELF vmlinux")
    open(out, "wb").write(elf)


def raw_btf(path):
    """{id: (kind, name, attrs, [member lines])} from bpftool's raw dump."""
    out = subprocess.run(["bpftool", "btf", "dump", "file", path, "format", "raw"],
                         check=True, capture_output=True, text=True).stdout
    types, cur = {}, None
    for line in out.splitlines():
        m = re.match(r"\[(\d+)\] (\w+) '([^']*)'(.*)", line)
        if m:
            cur = [m.group(2), m.group(3), m.group(4), []]
            types[int(m.group(1))] = cur
        elif cur is not None and line.startswith("\t"):
            cur[3].append(line.strip())
    return types


def attr(s, key):
    m = re.search(key + r"=(\d+)", s)
    return int(m.group(1)) if m else None


def kernel_enum(types, name):
    for kind, n, _, members in types.values():
        if kind == "ENUM" and n == name:
            return {int(re.search(r"val=(-?\d+)", l).group(1)): l.split("'")[1] for l in members}
    sys.exit(f"kernel_btf: the kernel's BTF has no enum {name}")


def obj_map_types(types):
    """map name -> BPF_MAP_TYPE number, from the __uint(type, N) of .maps."""
    maps = {}
    for kind, name, _, members in types.values():
        if kind != "DATASEC" or name != ".maps":
            continue
        for l in members:
            var = types[attr(l, "type_id")]
            st = types[attr(var[2], "type_id")]
            for ml in st[3]:
                if ml.startswith("'type' "):
                    ptr = types[attr(ml, "type_id")]
                    arr = types[attr(ptr[2], "type_id")]
                    maps[var[1]] = attr(arr[2], "nr_elems")
    return maps


def obj_calls(obj):
    """Helper ids the object calls; exits on a kfunc or subprogram call."""
    dis = subprocess.run(["llvm-objdump", "-d", obj], check=True, capture_output=True,
                         text=True).stdout
    ids = set()
    for line in dis.splitlines():
        m = re.search(r"\s85 ([0-9a-f]{2}) (?:[0-9a-f]{2} ){2}((?:[0-9a-f]{2} ?){4})\s+call", line)
        if not m:
            continue
        if m.group(1) != "00":  # src_reg 1: a BPF subprogram, 2: a kfunc
            sys.exit(f"kernel_btf: {obj}: a call that is not a helper: {line.strip()}")
        ids.add(int.from_bytes(bytes.fromhex(m.group(2).replace(" ", "")), "little"))
    return ids


def check(vmlinux, obj):
    kt, ot = raw_btf(vmlinux), raw_btf(obj)
    # The enums end with a __MAX_ marker, not a helper or map type.
    funcs = {v: n for v, n in kernel_enum(kt, "bpf_func_id").items() if not n.startswith("__")}
    mtypes = {v: n for v, n in kernel_enum(kt, "bpf_map_type").items() if not n.startswith("__")}
    bad = 0
    for kind, name, rest, _ in ot.values():
        if kind == "FUNC" and "linkage=extern" in rest:
            print(f"kernel_btf: {name}: an extern function (kfunc) in the object")
            bad += 1
    for h in sorted(obj_calls(obj)):
        ok = h in funcs and h != 0
        print(f"helper {h:3} {funcs.get(h, '(not in this kernel)')}: {'ok' if ok else 'MISSING'}")
        bad += not ok
    for m, t in sorted(obj_map_types(ot).items()):
        ok = t in mtypes and t != 0
        print(f"map {m}: {mtypes.get(t, f'type {t} (not in this kernel)')}: {'ok' if ok else 'MISSING'}")
        bad += not ok
    print(f"kernel_btf: the kernel's BTF knows helpers up to {max(funcs)} "
          f"({funcs[max(funcs)]}) and map types up to {max(mtypes)} ({mtypes[max(mtypes)]})")
    if bad:
        sys.exit(f"kernel_btf: {bad} thing(s) this kernel does not have")


def cpio(root, out):
    def entry(f, name, st, data=b""):
        fields = [len(entries), st.st_mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0]
        f.write(b"070701" + b"".join(b"%08x" % v for v in fields) + name.encode() + b"\0")
        f.write(b"\0" * (-(110 + len(name) + 1) % 4) + data + b"\0" * (-len(data) % 4))
        entries.append(name)

    entries = []
    with open(out, "wb") as f:
        for d, dirs, files in os.walk(root):
            for n in sorted(dirs) + sorted(files):
                p = os.path.join(d, n)
                st = os.lstat(p)
                rel = os.path.relpath(p, root)
                if stat.S_ISLNK(st.st_mode):
                    entry(f, rel, st, os.readlink(p).encode())
                elif stat.S_ISDIR(st.st_mode):
                    entry(f, rel, st)
                else:
                    entry(f, rel, st, open(p, "rb").read())
        entry(f, "TRAILER!!!", os.stat_result((0,) * 10))


def main():
    cmds = {"extract": extract, "check": check, "cpio": cpio}
    if len(sys.argv) != 4 or sys.argv[1] not in cmds:
        sys.exit("usage: kernel_btf.py extract VMLINUZ OUT | check VMLINUX OBJ | cpio DIR OUT")
    cmds[sys.argv[1]](sys.argv[2], sys.argv[3])


if __name__ == "__main__":
    main()
