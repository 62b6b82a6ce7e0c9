#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Prepare a server's NIC for tallyd, as root (deploy/REAL-NIC.md explains each
# step and why):
#   deploy/nic-setup.sh [--dry-run] [--mgmt IFACE] [--workers CPULIST]
#                       [--hugepages-2m N] [--hugepages-1g N] [--user USER] [PCI...]
# 1. checks that the IOMMU is on (vfio-pci needs it);
# 2. lists the NICs with PCI address, driver, NUMA node and interface;
# 3. binds each named PCI device to vfio-pci with dpdk-devbind.py, except mlx5
#    (mlx5_core stays: DPDK drives it through the kernel driver, bifurcated);
# 4. lets USER (default tally) open the vfio group devices (udev rule);
# 5. reserves 2 MiB (and 1 GiB) huge pages on the NUMA node of each NIC;
# 6. moves IRQ affinity off the worker CPUs (--workers);
# 7. prints the kernel command line to add (isolcpus, nohz_full, rcu_nocbs,
#    hugepages at boot, IOMMU) and the lcores to give tallyd.
# It never touches the management NIC: --mgmt, or the interface of the default
# route. --dry-run prints what it would do and changes nothing (no root needed).
set -euo pipefail

dry=0 mgmt="" workers="" hp2m=1024 hp1g=0 user=tally pcis=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry=1 ;;
    --mgmt) mgmt=$2; shift ;;
    --workers) workers=$2; shift ;;
    --hugepages-2m) hp2m=$2; shift ;;
    --hugepages-1g) hp1g=$2; shift ;;
    --user) user=$2; shift ;;
    -h|--help) sed -n '3,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "nic-setup: unknown option $1 (--help)" >&2; exit 2 ;;
    *) pcis+=("$1") ;;
  esac
  shift
done

say() { echo "nic-setup: $*"; }
die() { echo "nic-setup: error: $*" >&2; exit 1; }
# run CMD...: run it, or with --dry-run only show it
run() { if [ $dry = 1 ]; then echo "would run: $*"; else "$@"; fi; }
# put VALUE FILE: write a sysfs/procfs value, or show the write
put() {
  if [ $dry = 1 ]; then echo "would write $1 > $2"; else echo "$1" > "$2"; fi
}

[ $dry = 1 ] || [ "$(id -u)" -eq 0 ] || die "run as root (or with --dry-run)"
[ -n "$mgmt" ] || mgmt=$(ip -o route show default 2>/dev/null |
  awk '{ for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }')
# The PCI function under an interface: its device, or the nearest PCI
# ancestor of it (virtio-net's device is virtioN, a child of the PCI function).
iface_pci() {
  local d
  d=$(readlink -f "/sys/class/net/$1/device" 2>/dev/null) || return 0
  while [ "$d" != / ] && [ -n "$d" ]; do
    if [[ $(basename "$d") =~ ^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$ ]]; then
      basename "$d"; return 0
    fi
    d=$(dirname "$d")
  done
}
mgmt_pci=""
[ -z "$mgmt" ] || mgmt_pci=$(iface_pci "$mgmt")

pci_driver() { local d=/sys/bus/pci/devices/$1/driver; [ -e "$d" ] && basename "$(readlink -f "$d")" || echo none; }
pci_node() { cat "/sys/bus/pci/devices/$1/numa_node" 2>/dev/null || echo -1; }
pci_ifaces() { find "/sys/bus/pci/devices/$1/" -path '*/net/*' -maxdepth 3 -printf '%f ' 2>/dev/null; }

# 1. vfio-pci gives a user-space driver DMA only through the IOMMU.
check_iommu() {
  if [ -n "$(ls -A /sys/kernel/iommu_groups 2>/dev/null)" ]; then
    say "IOMMU: on ($(find /sys/kernel/iommu_groups -mindepth 1 -maxdepth 1 | wc -l) groups)"
  else
    say "IOMMU: OFF: vfio-pci NICs need intel_iommu=on iommu=pt (or amd_iommu=on) on the kernel command line; mlx5 does not"
  fi
}

# 2. Every network-class PCI function, bound to a kernel driver or not.
list_nics() {
  say "NICs (PCI address, driver, NUMA node, interfaces):"
  for dev in /sys/bus/pci/devices/*; do
    [ -e "$dev/class" ] || continue
    case "$(cat "$dev/class")" in 0x02*) ;; *) continue ;; esac
    local a; a=$(basename "$dev")
    printf '  %s  %-12s node %-3s %s%s\n' "$a" "$(pci_driver "$a")" "$(pci_node "$a")" \
      "$(pci_ifaces "$a")" "$([ "$a" = "$mgmt_pci" ] && echo "(management: never touched)")"
  done
  say "management interface: ${mgmt:-none found} ${mgmt_pci:+(PCI $mgmt_pci)}"
}

# 3. Bind one device for DPDK; mlx5 keeps its kernel driver.
bind_nic() {
  local a=$1 drv
  [ -e "/sys/bus/pci/devices/$a" ] || die "$a: no such PCI device (see the list above)"
  [ "$a" != "$mgmt_pci" ] || die "$a is the management NIC ($mgmt): refusing to touch it"
  drv=$(pci_driver "$a")
  case "$drv" in
    mlx5_core) say "$a: mlx5_core: no binding needed (bifurcated driver); pass -a $a to tallyd" ;;
    vfio-pci) say "$a: already bound to vfio-pci" ;;
    *)
      say "$a: $drv -> vfio-pci"
      run modprobe vfio-pci
      run dpdk-devbind.py --bind=vfio-pci "$a"
      ;;
  esac
}

# 4. tallyd runs as $user: let it open /dev/vfio/<group>.
vfio_access() {
  local rule=/etc/udev/rules.d/60-tally-vfio.rules
  say "vfio group devices: group $user via $rule"
  if [ $dry = 1 ]; then
    echo "would write SUBSYSTEM==\"vfio\", GROUP=\"$user\", MODE=\"0660\" > $rule"
    return
  fi
  echo "SUBSYSTEM==\"vfio\", GROUP=\"$user\", MODE=\"0660\"" > "$rule"
  for g in /dev/vfio/[0-9]*; do [ -e "$g" ] && chgrp "$user" "$g" && chmod 0660 "$g"; done
}

# 5. Huge pages on each NIC's node: DPDK's heap and mbufs live there.
reserve_node() {
  local node=$1 size=$2 n=$3 f
  f=/sys/devices/system/node/node$node/hugepages/hugepages-${size}kB/nr_hugepages
  [ "$n" -gt 0 ] || return 0
  if [ ! -e "$f" ]; then say "node $node: no ${size} kB pages in this kernel/CPU"; return 0; fi
  put "$n" "$f"
  [ $dry = 1 ] || say "node $node: $(cat "$f") pages of ${size} kB (asked $n)"
}

nic_nodes() {
  local a node nodes=""
  for a in "${pcis[@]}"; do
    node=$(pci_node "$a"); [ "$node" -ge 0 ] 2>/dev/null || node=0
    case " $nodes " in *" $node "*) ;; *) nodes="$nodes $node" ;; esac
  done
  echo "${nodes:- 0}"
}

# 6. Device interrupts go to the housekeeping CPUs, never to a worker.
irq_affinity() {
  local all house
  [ -n "$workers" ] || { say "IRQs: left alone (no --workers)"; return 0; }
  all=$(cat /sys/devices/system/cpu/online)
  house=$(python3 -c 'import sys
def parse(s):
    out = set()
    for part in s.split(","):
        a, _, b = part.partition("-")
        out.update(range(int(a), int(b or a) + 1))
    return out
print(",".join(str(c) for c in sorted(parse(sys.argv[1]) - parse(sys.argv[2]))))' "$all" "$workers")
  [ -n "$house" ] || die "--workers $workers leaves no CPU for the kernel and tallyd's main lcore"
  say "IRQs: affinity -> CPUs $house (off workers $workers); set IRQBALANCE_BANNED_CPULIST=$workers in /etc/default/irqbalance"
  for irq in /proc/irq/[0-9]*; do
    # Managed IRQs (NVMe, some NIC queues) refuse: the kernel places those.
    if [ $dry = 1 ]; then echo "would write $house > $irq/smp_affinity_list"; continue; fi
    echo "$house" > "$irq/smp_affinity_list" 2>/dev/null || true
  done
}

# 7. What only the boot loader can do.
kernel_cmdline() {
  local w=${workers:-<worker CPUs>} nodes pages2m="" pages1g="" n
  nodes=$(nic_nodes)
  for n in $nodes; do
    pages2m="${pages2m:+$pages2m,}$n:$hp2m"; pages1g="${pages1g:+$pages1g,}$n:$hp1g"
  done
  say "add to GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub and reboot:"
  echo "  intel_iommu=on iommu=pt isolcpus=managed_irq,domain,$w nohz_full=$w rcu_nocbs=$w" \
    "default_hugepagesz=$([ "$hp1g" -gt 0 ] && echo 1G || echo 2M)" \
    "hugepagesz=2M hugepages=$pages2m$([ "$hp1g" -gt 0 ] && echo " hugepagesz=1G hugepages=$pages1g")"
  for n in $nodes; do
    say "NIC node $n has CPUs $(cat "/sys/devices/system/node/node$n/cpulist" 2>/dev/null || echo '?'):" \
      "give tallyd -l <main>,<workers> from these (main: a housekeeping CPU; workers: isolated ones)"
  done
}

check_iommu
list_nics
for a in "${pcis[@]}"; do bind_nic "$a"; done
vfio_access
for n in $(nic_nodes); do
  reserve_node "$n" 2048 "$hp2m"
  reserve_node "$n" 1048576 "$hp1g"
done
irq_affinity
kernel_cmdline
[ $dry = 0 ] || say "dry run: nothing was changed"
