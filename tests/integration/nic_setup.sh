#!/usr/bin/env bash
# deploy/nic-setup.sh --dry-run on this machine: it lists the NICs, plans
# hugepages and IRQ affinity, prints the kernel command line, changes nothing,
# refuses an unknown PCI address and never touches the management NIC (the
# interface of the default route, when it is a PCI device here).
. "$(dirname "$0")/lib.sh"
script=$src/deploy/nic-setup.sh
if command -v shellcheck > /dev/null; then
  shellcheck "$script" "$src/deploy/hugepages.sh" || fail "shellcheck complains"
  echo "ok: shellcheck is silent"
fi

last_cpu=$(( $(nproc) - 1 ))
bash "$script" --dry-run --workers "$last_cpu" > "$work/plan" 2>&1 || { cat "$work/plan"; fail "dry run failed"; }
grep -qE "isolcpus=managed_irq,domain,$last_cpu nohz_full=$last_cpu rcu_nocbs=$last_cpu" "$work/plan" ||
  { cat "$work/plan"; fail "no kernel command line for worker CPU $last_cpu"; }
grep -q 'dry run: nothing was changed' "$work/plan" || fail "dry run did not say so"
echo "ok: $(grep -F 'isolcpus' "$work/plan" | sed 's/^ *//')"

if bash "$script" --dry-run 0000:ff:1f.7 > "$work/bad" 2>&1; then fail "unknown PCI address accepted"; fi
grep -q 'no such PCI device' "$work/bad" || { cat "$work/bad"; fail "unclear error for an unknown device"; }
echo "ok: $(grep -F 'error' "$work/bad")"

mgmt=$(ip -o route show default 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }')
mgmt_pci=$(grep -oE '^  [0-9a-f:.]+ .*\(management' "$work/plan" | awk '{ print $1 }' || true)
if [ -n "$mgmt_pci" ]; then
  if bash "$script" --dry-run "$mgmt_pci" > "$work/mgmt" 2>&1; then fail "management NIC $mgmt_pci accepted"; fi
  grep -q "is the management NIC ($mgmt)" "$work/mgmt" || { cat "$work/mgmt"; fail "unclear refusal"; }
  grep -q "dpdk-devbind.*$mgmt_pci" "$work/mgmt" && fail "would bind the management NIC"
  echo "ok: $(grep -F 'error' "$work/mgmt")"
else
  echo "ok: (no PCI management NIC on this machine: refusal not exercised)"
fi
echo "PASS nic-setup"
