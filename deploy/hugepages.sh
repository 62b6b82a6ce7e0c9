#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Reserve 2 MiB huge pages for DPDK and mount hugetlbfs, as root:
#   deploy/hugepages.sh [PAGES] [MOUNT] [OWNER]
# PAGES defaults to 512 (1 GiB), MOUNT to /dev/hugepages. With OWNER (a user),
# MOUNT is a hugetlbfs of its own that only OWNER may write (uid, gid, mode
# 0700): the systemd unit runs this as root in ExecStartPre and tallyd as the
# unprivileged user tally with --huge-dir MOUNT.
# Idempotent: never lowers a reservation that is already larger. Prints
# "hugepages: N free of M at MOUNT" and exits 0 when DPDK can use them, 1 when
# not (not root, or the kernel could not find PAGES free pages), so callers
# can fall back to --no-huge. tallyd's own tables do not need this: they use
# transparent huge pages (see dataplane/mem.c). Reservations per NUMA node and
# 1 GiB pages: deploy/nic-setup.sh and deploy/REAL-NIC.md.
set -u
pages=${1:-512}
mnt=${2:-/dev/hugepages}
owner=${3:-}
sys=/proc/sys/vm/nr_hugepages

if [ "$(id -u)" -ne 0 ]; then
  echo "hugepages: not root; DPDK will run with --no-huge" >&2
  exit 1
fi
have=$(cat "$sys")
if [ "$have" -lt "$pages" ]; then
  echo "$pages" > "$sys" 2>/dev/null || true
fi
opts=pagesize=2M
if [ -n "$owner" ]; then
  id "$owner" > /dev/null 2>&1 || { echo "hugepages: no user $owner" >&2; exit 1; }
  opts="$opts,uid=$(id -u "$owner"),gid=$(id -g "$owner"),mode=0700"
fi
if ! grep -q " $mnt hugetlbfs " /proc/mounts; then
  mkdir -p "$mnt"
  mount -t hugetlbfs -o "$opts" nodev "$mnt" 2>/dev/null || {
    echo "hugepages: cannot mount hugetlbfs at $mnt" >&2; exit 1; }
fi
total=$(awk '/^HugePages_Total/ {print $2}' /proc/meminfo)
free=$(awk '/^HugePages_Free/ {print $2}' /proc/meminfo)
echo "hugepages: $free free of $total at $mnt"
[ "$free" -ge "$pages" ] || {
  echo "hugepages: only $free of the $pages pages asked for are free (memory fragmented?)" >&2
  exit 1; }
