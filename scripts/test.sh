#!/usr/bin/env bash
# Runs every test: installs what is missing, then
#   1. the formatting check (swift format lint --strict, configuration in .swift-format),
#   2. the Swift unit tests (swift-testing),
#   3. the HTTP integration suite against a real sessiond (pytest) and schemathesis against openapi.yaml,
#      once per session backend (--storage sqlite, memory, then redis: each test starts its own
#      redis-server on a free loopback port; Tests/IntegrationTests/test_redis.py runs only then), and
#      once more with --storage redis on a Redis Cluster (SESSIOND_TEST_REDIS=cluster: each test starts
#      its own cluster of three primaries; test_redis_cluster.py adds failover and resharding),
#   4. /metrics against promtool, prometheus-client and a real Prometheus 2.42,
#   5. the Node client's tests (node --test, against a sessiond they start),
#   6. the Prometheus rules/alerts unit tests and the dashboard checks, offline and live,
#   7. the one-minute soak (Benchmarks/soak/run.sh 60) against the debug build,
#   8. every libFuzzer target of Fuzz/ for 15 s (scripts/fuzz.sh all 15; builds .build/fuzz first).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

python_packages=(pytest requests pyyaml openapi-schema-validator prometheus-client)
if ! python3 -c "import pytest, requests, yaml, openapi_schema_validator, prometheus_client" 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check "${python_packages[@]}" 2>/dev/null \
        || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "${python_packages[@]}"
fi

status=0
swift format lint --strict --recursive Sources Tests Benchmarks/SessionBenchmarks Fuzz/Sources Package.swift \
    Benchmarks/Package.swift Fuzz/Package.swift \
    || { echo "test.sh: swift format lint found problems (fix with: swift format --in-place --recursive Sources Tests Fuzz/Sources)"; status=1; }

swift build --build-tests
swift test --skip-build

export SESSIOND_BIN="$PWD/.build/debug/sessiond"
for backend in sqlite memory redis; do
    echo "== integration suite with --storage $backend"
    SESSIOND_TEST_STORAGE=$backend Tests/IntegrationTests/run.sh || status=1
done
echo "== integration suite with --storage redis on a Redis Cluster"
SESSIOND_TEST_STORAGE=redis SESSIOND_TEST_REDIS=cluster Tests/IntegrationTests/run.sh || status=1
python3 -m pytest -q -p no:cacheprovider Tests/MetricsIntegration || status=1
echo "== Node client (node --test)"
clients/node/test/run.sh || status=1
if [ -x prometheus/check.sh ]; then prometheus/check.sh || status=1; fi
if [ -x prometheus/live_check.sh ]; then prometheus/live_check.sh || status=1; fi
echo "== soak (one minute)"
SESSIOND_BIN="$SESSIOND_BIN" Benchmarks/soak/run.sh 60 || status=1
echo "== fuzzing (15 s a target)"
FUZZ_NICE=0 scripts/fuzz.sh all 15 || status=1
exit $status
