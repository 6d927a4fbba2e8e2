#!/usr/bin/env bash
# Runs every test: installs what is missing, then
#   1. the Swift unit tests (swift-testing),
#   2. the HTTP integration suite against a real sessiond (pytest) and schemathesis against openapi.yaml,
#   3. /metrics against promtool, prometheus-client and a real Prometheus 2.42,
#   4. the Prometheus rules/alerts unit tests and the dashboard checks, offline and live.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

python_packages=(pytest requests pyyaml openapi-schema-validator prometheus-client)
if ! python3 -c "import pytest, requests, yaml, openapi_schema_validator, prometheus_client" 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check "${python_packages[@]}" 2>/dev/null \
        || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "${python_packages[@]}"
fi

swift build --build-tests
swift test --skip-build

export SESSIOND_BIN="$PWD/.build/debug/sessiond"
status=0
Tests/IntegrationTests/run.sh || status=1
python3 -m pytest -q -p no:cacheprovider Tests/MetricsIntegration || status=1
if [ -x prometheus/check.sh ]; then prometheus/check.sh || status=1; fi
if [ -x prometheus/live_check.sh ]; then prometheus/live_check.sh || status=1; fi
exit $status
