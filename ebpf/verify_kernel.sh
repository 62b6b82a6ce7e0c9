#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# tally_xdp on the kernel Debian 12 ships, without booting the host into it:
#   bash ebpf/verify_kernel.sh BUILD [KERNEL_PACKAGE]
# fetches Debian's linux-image package (default: the newest
# linux-image-6.1.0-*-amd64-unsigned apt knows) with apt-get download, boots
# its vmlinuz under qemu (TCG: no KVM needed) with an initramfs holding
# busybox, bpftool, BUILD's tally_xdp.bpf.o and its BPF unit test (test_xdp,
# with the libraries ldd names), and in that guest:
#   1. bpftool prog load: the 6.1 verifier on the object, log printed if refused;
#   2. test_xdp: every verdict on crafted frames (bpf_prog_test_run_opts), the
#      maps, the allow-list and the token bucket, and the redirect into an
#      AF_XDP socket, on 6.1's own BPF code.
# Also checks the object against that kernel's own BTF (the .BTF of its
# vmlinux): every helper the program calls is in its enum bpf_func_id, every
# map type in enum bpf_map_type, the object calls no kfunc and has no CO-RE
# relocation (bpftool gen min_core_btf finds none to keep).
# Exit 0 when all pass; 77 (skip) when qemu or the package cannot be had.
# Needs root (apt-get download into a cache) and qemu-system-x86, busybox-static.
set -euo pipefail
build=$(cd "${1:?usage: verify_kernel.sh BUILD [KERNEL_PACKAGE]}" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
cache=${TALLY_KERNEL_CACHE:-/var/tmp/tally-kernel}
obj=$build/ebpf/tally_xdp.bpf.o
unit=$build/tests/test_xdp
for t in qemu-system-x86_64 busybox bpftool llvm-objdump; do
  command -v "$t" > /dev/null || { echo "verify_kernel: SKIP: no $t"; exit 77; }
done
[ -f "$obj" ] && [ -x "$unit" ] || { echo "verify_kernel: build $build first"; exit 1; }
pkg=${2:-$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$' |
  awk '{ print $1 }' | sort -V | tail -1)}
[ -n "$pkg" ] || { echo "verify_kernel: SKIP: apt knows no linux-image-6.1.0-*-amd64-unsigned"; exit 77; }
mkdir -p "$cache"
work=$(mktemp -d /tmp/tally-vk.XXXXXX)
trap 'rm -rf "$work"' EXIT
if ! ls "$cache/${pkg}_"*.deb > /dev/null 2>&1; then
  (cd "$cache" && apt-get download "$pkg" > /dev/null 2>&1) ||
    { echo "verify_kernel: SKIP: apt-get download $pkg failed"; exit 77; }
fi
deb=$(ls "$cache/${pkg}_"*.deb | tail -1)
dpkg-deb -x "$deb" "$work/k"
vmlinuz=$(ls "$work"/k/boot/vmlinuz-*)
kver=${vmlinuz##*/vmlinuz-}
echo "verify_kernel: $(basename "$deb"), kernel $kver"

# The kernel's BTF: vmlinuz is an xz-compressed vmlinux behind a boot stub.
python3 "$src/ebpf/kernel_btf.py" extract "$vmlinuz" "$work/vmlinux"
python3 "$src/ebpf/kernel_btf.py" check "$work/vmlinux" "$obj"
bpftool gen min_core_btf "$work/vmlinux" "$work/min.btf" "$obj"
nt=$(bpftool btf dump file "$work/min.btf" | grep -c '^\[' || true)
[ "$nt" -eq 0 ] || { echo "verify_kernel: $nt kernel types kept by min_core_btf: CO-RE in use"; exit 1; }
echo "verify_kernel: no CO-RE relocation (min_core_btf keeps 0 kernel types)"

# The guest: busybox, the two programs and their libraries, the object at the
# path the unit test was built with.
root=$work/root
mkdir -p "$root"/{bin,proc,sys,dev,tmp} "$root$(dirname "$obj")" "$root$(dirname "$unit")"
cp "$(command -v busybox)" "$root/bin/busybox"
for a in sh mount mkdir ip poweroff cat echo sleep; do ln -s busybox "$root/bin/$a"; done
cp "$obj" "$root$obj"
cp "$unit" "$root$unit"
cp "$(command -v bpftool)" "$root/bin/bpftool"
for b in "$unit" "$(command -v bpftool)"; do
  ldd "$b" | awk '/=>/ { print $3 } /ld-linux/ { print $1 }' | while read -r l; do
    [ -f "$l" ] && mkdir -p "$root$(dirname "$l")" && cp -L "$l" "$root$l"
  done
done
cat > "$root/init" <<EOF
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mount -t bpf bpf /sys/fs/bpf
ip link set lo up
echo "guest: kernel \$(cat /proc/sys/kernel/osrelease)"
if bpftool -d prog load $obj /sys/fs/bpf/tally type xdp > /tmp/load.log 2>&1; then
  echo "guest: bpftool prog load: OK"
else
  cat /tmp/load.log; echo "guest: bpftool prog load: FAILED"
fi
$unit 2>&1
echo "guest: test_xdp exit \$?"
poweroff -f
EOF
chmod +x "$root/init"
python3 "$src/ebpf/kernel_btf.py" cpio "$root" "$work/initrd"
timeout 900 qemu-system-x86_64 -machine q35 -cpu max -m 1024 -smp 1 -nographic -no-reboot \
  -kernel "$vmlinuz" -initrd "$work/initrd" -append "console=ttyS0 panic=-1 quiet" \
  > "$work/console.log" 2>&1 || true
grep -E 'guest:|^\[ *(OK|PASSED|FAILED|ERROR) |^\[==========\]' "$work/console.log" || true
grep -q "guest: kernel $kver" "$work/console.log" ||
  { tail -30 "$work/console.log"; echo "verify_kernel: the guest did not boot"; exit 1; }
grep -q "^guest: bpftool prog load: OK" "$work/console.log" ||
  { sed -n '/verifier\|libbpf/p' "$work/console.log" | tail -40; echo "verify_kernel: refused by $kver"; exit 1; }
grep -q "^guest: test_xdp exit 0" "$work/console.log" ||
  { grep -A5 FAILED "$work/console.log" | head -40; echo "verify_kernel: test_xdp failed on $kver"; exit 1; }
echo "verify_kernel: PASS on $kver: loaded by its verifier, test_xdp passed"
