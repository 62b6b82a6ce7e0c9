#!/usr/bin/env bash
# deploy/prometheus/: promtool accepts the alerting rules and the scrape config,
# and the rules' unit tests (tally_rules_test.yml) fire the expected alerts on
# the series tallyd exposes.
. "$(dirname "$0")/lib.sh"
promtool check rules "$src/deploy/prometheus/tally.rules.yml" || fail "promtool check rules"
promtool check config "$src/deploy/prometheus/prometheus.yml" || fail "promtool check config"
cp "$src/deploy/prometheus/tally.rules.yml" "$(dirname "$0")/tally_rules_test.yml" "$work/"
promtool test rules "$work/tally_rules_test.yml" || fail "promtool test rules"
echo "PASS prom-rules"
