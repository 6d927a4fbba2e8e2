#!/usr/bin/env bash
# Live monitoring check, loopback only, ~2 minutes:
#   1. starts sessiond ($SESSIOND_BIN, default .build/debug/sessiond) on a free 127.0.0.1 port with
#      --idle-timeout 2 and SQLite storage in a fresh temporary --data-dir (--durability commit),
#      and checks a real scrape with `promtool check metrics`;
#   2. starts Prometheus 2.42 on a free 127.0.0.1 port with a temp TSDB and a temp config that
#      scrapes it every 1 s and loads the real rules (prometheus/rules/*.yml, evaluated every 1 s);
#   3. runs prometheus/load.py (50 users: logins, validations with good, unknown, replayed and
#      malformed tokens, logouts, revocations, idle and absolute expiry; ~75 s);
#   4. checks that Prometheus saw exactly what the load caused (load.py verify: sessions, requests,
#      validations, and the storage rows, commits and batches it wrote) and that every rule
#      evaluates without error;
#   5. runs dashboards/check_dashboards.py --live (every dashboard and rule expr, non-empty) and
#      --scrape (every catalogue and used metric name is in the real scrape);
#   6. with --render: draws dashboards/sessiond-overview.png from the run (dashboards/render.py,
#      matplotlib in .venv-monitoring/, created on first use from PyPI).
# Both processes are always stopped (trap). Exit status 0 only if every step passed.
#
# Usage: prometheus/live_check.sh [--render] [--keep]
# Env:   SESSIOND_BIN, LOAD_DURATION (s, default 75), PROMETHEUS_BIN, PROMTOOL, PYTHON
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

render=0 keep=0
for arg in "$@"; do
    case "$arg" in
        --render) render=1 ;;
        --keep) keep=1 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "live_check: unknown argument $arg" >&2; exit 2 ;;
    esac
done

SESSIOND_BIN=${SESSIOND_BIN:-.build/debug/sessiond}
LOAD_DURATION=${LOAD_DURATION:-75}
PROMETHEUS_BIN=${PROMETHEUS_BIN:-prometheus}
PROMTOOL=${PROMTOOL:-promtool}
PYTHON=${PYTHON:-python3}
export PROMTOOL

started=$(date +%s)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sessiond-live.XXXXXX")
sessiond_pid="" prometheus_pid=""

stop() {   # stop one process we started, by its pid; wait for it
    local pid=$1
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    stop "$prometheus_pid"
    stop "$sessiond_pid"
    if [ "$keep" = 1 ]; then echo "live_check: kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

passed=0 failed=0
step() {   # step "name" command...: run, count, never abort the script
    local name=$1; shift
    echo "=== $name"
    if "$@"; then passed=$((passed + 1)); echo "--- ok: $name"
    else failed=$((failed + 1)); echo "--- FAILED: $name"; fi
}
die() { echo "live_check: $*" >&2; exit 1; }
wait_http() {   # wait_http URL SECONDS
    for _ in $(seq $(( $2 * 10 ))); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}

for tool in "$PROMETHEUS_BIN" "$PROMTOOL" curl jq "$PYTHON"; do
    command -v "$tool" >/dev/null || die "$tool not found (scripts/setup.sh installs prometheus, curl, jq)"
done
"$PROMETHEUS_BIN" --version 2>&1 | head -1

# The binary may be rebuilt under us: wait for it for up to 2 minutes.
for _ in $(seq 120); do [ -x "$SESSIOND_BIN" ] && break; echo "live_check: waiting for $SESSIOND_BIN"; sleep 1; done
[ -x "$SESSIOND_BIN" ] || die "$SESSIOND_BIN not found; build it first (swift build)"
cp "$SESSIOND_BIN" "$tmp/sessiond"   # run a private copy so that a rebuild cannot pull it away

read -r sessiond_port prometheus_port < <("$PYTHON" - <<'EOF'
import socket
a, b = socket.socket(), socket.socket()
a.bind(("127.0.0.1", 0)); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])
EOF
)
api="http://127.0.0.1:$sessiond_port"
prom="http://127.0.0.1:$prometheus_port"

# SQLite storage (the default) in the temporary directory, never ./data in the repository; commit
# durability (the default, spelled out: load.py verify relies on writes being answered after their commit).
"$tmp/sessiond" --host 127.0.0.1 --port "$sessiond_port" --idle-timeout 2 --data-dir "$tmp/data" \
    --storage sqlite --durability commit >"$tmp/sessiond.log" 2>&1 &
sessiond_pid=$!
wait_http "$api/readyz" 20 || { cat "$tmp/sessiond.log"; die "sessiond did not start on $api"; }
echo "sessiond pid $sessiond_pid on $api"

cat >"$tmp/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $repo/prometheus/rules/*.yml
scrape_configs:
  - job_name: sessiond
    static_configs:
      - targets: ["127.0.0.1:$sessiond_port"]
EOF
"$PROMTOOL" check config "$tmp/prometheus.yml" >/dev/null || die "temp prometheus.yml invalid"
"$PROMETHEUS_BIN" --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/tsdb" \
    --web.listen-address="127.0.0.1:$prometheus_port" --log.level=warn >"$tmp/prometheus.log" 2>&1 &
prometheus_pid=$!
wait_http "$prom/-/ready" 30 || { cat "$tmp/prometheus.log"; die "prometheus did not start on $prom"; }
echo "prometheus pid $prometheus_pid on $prom"

check_scrape() {
    local body
    body=$(curl -fsS "$api/metrics") || return 1
    printf '%s\n' "$body" | "$PROMTOOL" check metrics || return 1
    # gzip, as Prometheus asks for it
    curl -fsS -H 'Accept-Encoding: gzip' "$api/metrics" | gunzip | "$PROMTOOL" check metrics
}
step "real scrape passes promtool check metrics (plain and gzip)" check_scrape

step "load ($LOAD_DURATION s)" "$PYTHON" prometheus/load.py run --url "$api" --duration "$LOAD_DURATION" \
    --summary "$tmp/summary.json"

sleep 2   # one more scrape and rule evaluation
step "Prometheus saw exactly what the load caused" "$PYTHON" prometheus/load.py verify \
    --prometheus "$prom" --summary "$tmp/summary.json" --storage sqlite

check_rule_health() {
    local rules
    rules=$(curl -fsS "$prom/api/v1/rules") || return 1
    local total bad loaded
    total=$(jq '[.data.groups[].rules[]] | length' <<<"$rules")
    bad=$(jq -r '[.data.groups[].rules[] | select(.health != "ok") | "\(.name): \(.health) \(.lastError // "")"] | .[]' <<<"$rules")
    loaded=$(grep -cE '^\s*- (record|alert):' prometheus/rules/*.yml | awk -F: '{s += $NF} END {print s}')
    echo "rules evaluated by Prometheus: $total (in the rule files: $loaded)"
    jq -r '.data.groups[].rules[] | select(.type == "alerting" and .state != "inactive") | "  alert \(.name): \(.state)"' <<<"$rules"
    [ -z "$bad" ] || { echo "rules with errors:"; echo "$bad"; return 1; }
    [ "$total" = "$loaded" ]
}
step "every rule loaded and evaluates without error" check_rule_health

step "dashboards + rules: live PromQL and real scrape" "$PYTHON" dashboards/check_dashboards.py \
    --live "$prom" --scrape "$api/metrics"

if [ "$render" = 1 ]; then
    render_png() {
        local venv=.venv-monitoring
        if ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
            echo "creating $venv with matplotlib"
            "$PYTHON" -m venv "$venv" && "$venv/bin/pip" install -q matplotlib || return 1
        fi
        "$venv/bin/python" dashboards/render.py --prometheus "$prom" --summary "$tmp/summary.json" \
            --out dashboards/sessiond-overview.png
    }
    step "render dashboards/sessiond-overview.png" render_png
fi

if [ "$failed" != 0 ]; then
    echo "--- sessiond log (tail)"; tail -20 "$tmp/sessiond.log"
    echo "--- prometheus log (tail)"; tail -20 "$tmp/prometheus.log"
fi
echo "live_check: $(( $(date +%s) - started )) s"
echo "live_check: $passed passed, $failed failed"
[ "$failed" = 0 ]
