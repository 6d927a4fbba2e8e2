#!/usr/bin/env bash
# Offline monitoring checks (no sessiond, no Prometheus server; a few seconds):
#   promtool check config, check rules --lint=all --lint-fatal, test rules (every alert firing and
#   quiet, every recording rule), and the dashboard structure lint + offline PromQL check.
# The live check (a real sessiond and Prometheus 2.42) is prometheus/live_check.sh.
# Usage: prometheus/check.sh          Exit status 0 only if every check passed.
set -uo pipefail
cd "$(dirname "$0")/.."
PROMTOOL=${PROMTOOL:-promtool}
PYTHON=${PYTHON:-python3}
export PROMTOOL

command -v "$PROMTOOL" >/dev/null || { echo "check: promtool not found (apt-get install prometheus)" >&2; exit 2; }
"$PYTHON" -c 'import yaml' 2>/dev/null || { echo "check: PyYAML not found (apt-get install python3-yaml)" >&2; exit 2; }

passed=0 failed=0
step() {
    local name=$1; shift
    echo "=== $name"
    if "$@"; then passed=$((passed + 1)); echo "--- ok: $name"
    else failed=$((failed + 1)); echo "--- FAILED: $name"; fi
}

step "promtool check config" "$PROMTOOL" check config prometheus/prometheus.yml
step "promtool check rules --lint=all --lint-fatal" "$PROMTOOL" check rules --lint=all --lint-fatal prometheus/rules/*.yml
step "promtool test rules" "$PROMTOOL" test rules prometheus/tests/*.test.yml
step "dashboard JSON parses (jq)" jq empty dashboards/*.json
step "dashboards: structure lint and offline PromQL" "$PYTHON" dashboards/check_dashboards.py

echo "check: $passed passed, $failed failed"
[ "$failed" = 0 ]
