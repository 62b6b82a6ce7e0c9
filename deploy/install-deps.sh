#!/usr/bin/env bash
# Installs every Debian 12 package Tally's build, demo, tests, fuzzers and benchmarks
# need. Idempotent: apt-get skips what is already there. Run as root.
set -euo pipefail

packages=(
  # build
  build-essential meson ninja-build pkg-config clang llvm libclang-rt-14-dev
  # dataplane and control plane libraries
  dpdk dpdk-dev libdpdk-dev libhyperscan-dev libbpf-dev libck-dev libsodium-dev
  libxxhash-dev libinih-dev libjansson-dev libsqlite3-dev libpcap-dev libisal-dev libpq-dev
  libzstd-dev
  libhiredis-dev libpcre2-dev
  # XDP front: libxdp (leftover detection, AF_XDP sockets in tests), bpftool and
  # xdp-tools to inspect an interface, iproute2 for the namespace tests
  libxdp-dev xdp-tools bpftool iproute2 ethtool socat iputils-ping
  # a stock StatsD client library for the XDP test (tests/integration/statsd_client_send.py)
  python3-aiodogstatsd
  # the XDP program under Debian 12's 6.1 kernel in a VM (ebpf/verify_kernel.sh)
  qemu-system-x86 busybox-static
  # the client test's packet loss (nft numgen drops on a veth, both ways)
  nftables
  # sd_notify for the systemd unit (Type=notify)
  libsystemd-dev
  # metrics and status page HTTP server
  libmicrohttpd-dev
  # tests, demo, benchmark driver
  libcmocka-dev sqlite3 python3 iproute2 procps util-linux
  # PostgreSQL sink tests: a private server per test (initdb, pg_ctl, psql)
  postgresql-15 postgresql-client-15
  # Redis sink tests: a server, and redis-cli for cluster setup and tally-check
  redis-server redis-tools
  # metrics tests: a real Prometheus (and promtool), the status page in headless Chromium
  prometheus chromium
  # real StatsD clients test: a loopback capture, the Python client, npm for hot-shots
  tcpdump python3-aiodogstatsd nodejs npm
  # benchmark driver (perf/bench.py): callgrind's counts per event, results.svg
  valgrind python3-matplotlib
)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: run as root (apt-get needs it)" >&2
  exit 1
fi
missing=()
for p in "${packages[@]}"; do
  # A Node.js from elsewhere (NodeSource's bundles npm and conflicts with
  # Debian's npm package) serves the real-clients test as well.
  case $p in nodejs|npm) command -v node > /dev/null && command -v npm > /dev/null && continue;; esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
