#!/usr/bin/env bash
# Live monitoring check, loopback only, ~2.5 minutes, in two stages.
# Stage "sqlite" (one instance, ~2 minutes):
#   1. starts sessiond ($SESSIOND_BIN, default .build/debug/sessiond) on a free 127.0.0.1 port with
#      --idle-timeout 2 and SQLite storage in a fresh temporary --data-dir (--durability commit),
#      and checks a real scrape with `promtool check metrics`;
#   2. starts Prometheus 2.42 on a free 127.0.0.1 port with a temp TSDB and a temp config that
#      scrapes it every 1 s and loads the real rules (prometheus/rules/*.yml, evaluated every 1 s);
#   3. runs prometheus/load.py (50 users: logins, validations with good, unknown, replayed and
#      malformed tokens, logouts, revocations, idle and absolute expiry; ~75 s);
#   4. checks that Prometheus saw exactly what the load caused (load.py verify: sessions, requests,
#      validations, the store gauges read per store, and the storage rows, commits and batches it
#      wrote) and that every rule evaluates without error;
#   5. runs dashboards/check_dashboards.py --live (every dashboard and rule expr, non-empty; the
#      sessiond_redis_* ones empty) and --scrape (every catalogue and used metric name is in the
#      real scrape, the sessiond_redis_* families absent);
#   6. with --render: draws dashboards/sessiond-overview.png from the run (dashboards/render.py,
#      matplotlib in .venv-monitoring/, created on first use from PyPI).
# Stage "redis" (two instances sharing one Redis, ~30 s):
#   7. starts redis-server ($REDIS_SERVER_BIN) on a free 127.0.0.1 port (no persistence, temp dir),
#      two sessiond instances A and B with --storage redis on it, and Prometheus scraping both;
#      checks both real scrapes with `promtool check metrics`;
#   8. runs load.py shared-run (logins on A, validations on B, logouts on B, revocations on A) and
#      load.py shared-verify: job:sessiond_realtime_users:sum and the max-per-store sums equal the
#      true counts (not doubled), sessions created add up over the instances, sessiond_redis_up is 1
#      on both, one Redis command per operation answered, no sessiond_storage_* series;
#   9. every rule evaluates without error; check_dashboards.py --live and --scrape (both instances)
#      in redis mode (the sessiond_storage_* exprs empty, the families absent);
#  10. stops redis-server and checks load.py redis-down: /readyz and /v1 answer 503
#      storage_unavailable, /metrics is served with sessiond_redis_up 0 and no store gauges, and the
#      job-level store rules are absent in Prometheus.
# Every process the script starts is stopped (trap). Exit status 0 only if every step passed.
#
# Usage: prometheus/live_check.sh [--render] [--keep] [--stage sqlite|redis|all]
# Env:   SESSIOND_BIN, LOAD_DURATION (s, default 75), PROMETHEUS_BIN, PROMTOOL, PYTHON, REDIS_SERVER_BIN
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

render=0 keep=0 stage=all
while [ $# -gt 0 ]; do
    case "$1" in
        --render) render=1 ;;
        --keep) keep=1 ;;
        --stage) shift; stage=${1:-} ;;
        --stage=*) stage=${1#--stage=} ;;
        -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
        *) echo "live_check: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
case "$stage" in sqlite|redis|all) ;; *) echo "live_check: --stage is sqlite, redis or all" >&2; exit 2 ;; esac
[ "$render" = 0 ] || [ "$stage" != redis ] || { echo "live_check: --render draws the sqlite stage" >&2; exit 2; }

SESSIOND_BIN=${SESSIOND_BIN:-.build/debug/sessiond}
LOAD_DURATION=${LOAD_DURATION:-75}
PROMETHEUS_BIN=${PROMETHEUS_BIN:-prometheus}
PROMTOOL=${PROMTOOL:-promtool}
PYTHON=${PYTHON:-python3}
REDIS_SERVER_BIN=${REDIS_SERVER_BIN:-redis-server}
export PROMTOOL

started=$(date +%s)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sessiond-live.XXXXXX")
pids=()   # every process this script started, in start order

stop() {   # stop one process we started, by its pid; wait for it
    local pid=$1
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
forget_pid() {   # forget_pid PID: drop a stopped process from the list
    local kept=() p
    for p in "${pids[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
    pids=("${kept[@]}")
}
stop_all() {   # newest first: Prometheus before the instances it scrapes, sessiond before Redis
    local i
    for (( i = ${#pids[@]} - 1; i >= 0; i-- )); do stop "${pids[$i]}"; done
    pids=()
}
cleanup() {
    stop_all
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
free_ports() {   # free_ports N: N free loopback TCP ports on one line
    "$PYTHON" - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
EOF
}
start_prometheus() {   # start_prometheus DIR PORT TARGET...: config, TSDB and log in DIR; sets prometheus_pid
    local dir=$1 port=$2; shift 2
    local targets
    targets=$(printf '"%s", ' "$@"); targets=${targets%, }
    mkdir -p "$dir"
    cat >"$dir/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $repo/prometheus/rules/*.yml
scrape_configs:
  - job_name: sessiond
    static_configs:
      - targets: [$targets]
EOF
    "$PROMTOOL" check config "$dir/prometheus.yml" >/dev/null || die "temp prometheus.yml invalid"
    "$PROMETHEUS_BIN" --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/tsdb" \
        --web.listen-address="127.0.0.1:$port" --log.level=warn >"$dir/prometheus.log" 2>&1 &
    prometheus_pid=$!
    pids+=("$prometheus_pid")
    wait_http "http://127.0.0.1:$port/-/ready" 30 || { cat "$dir/prometheus.log"; die "prometheus did not start on 127.0.0.1:$port"; }
    echo "prometheus pid $prometheus_pid on http://127.0.0.1:$port scraping $*"
}
wait_scraped() {   # wait_scraped PROMETHEUS_URL N: until Prometheus has scraped N sessiond targets
    local n
    for _ in $(seq 150); do
        n=$(curl -fsS "$1/api/v1/query" --data-urlencode 'query=count(up{job="sessiond"} == 1)' 2>/dev/null \
            | jq -r '.data.result[0].value[1] // "0"' 2>/dev/null)
        [ "$n" = "$2" ] && return 0
        sleep 0.1
    done
    echo "live_check: Prometheus has not scraped $2 target(s) in 15 s"
    return 1
}
check_scrape() {   # check_scrape API_URL...: each /metrics passes promtool check metrics, plain and gzip
    local api body
    for api in "$@"; do
        body=$(curl -fsS "$api/metrics") || return 1
        printf '%s\n' "$body" | "$PROMTOOL" check metrics || return 1
        # gzip, as Prometheus asks for it
        curl -fsS -H 'Accept-Encoding: gzip' "$api/metrics" | gunzip | "$PROMTOOL" check metrics || return 1
    done
}
check_rule_health() {   # check_rule_health PROMETHEUS_URL
    local rules total bad loaded
    rules=$(curl -fsS "$1/api/v1/rules") || return 1
    total=$(jq '[.data.groups[].rules[]] | length' <<<"$rules")
    bad=$(jq -r '[.data.groups[].rules[] | select(.health != "ok") | "\(.name): \(.health) \(.lastError // "")"] | .[]' <<<"$rules")
    loaded=$(grep -cE '^\s*- (record|alert):' prometheus/rules/*.yml | awk -F: '{s += $NF} END {print s}')
    echo "rules evaluated by Prometheus: $total (in the rule files: $loaded)"
    jq -r '.data.groups[].rules[] | select(.type == "alerting" and .state != "inactive") | "  alert \(.name): \(.state)"' <<<"$rules"
    [ -z "$bad" ] || { echo "rules with errors:"; echo "$bad"; return 1; }
    [ "$total" = "$loaded" ]
}
show_logs() {   # show_logs FILE...: the tail of each, after a failure
    local f
    for f in "$@"; do [ -f "$f" ] && { echo "--- $(basename "$f") (tail)"; tail -20 "$f"; }; done
}

tools=("$PROMETHEUS_BIN" "$PROMTOOL" curl jq "$PYTHON")
[ "$stage" = sqlite ] || tools+=("$REDIS_SERVER_BIN")
for tool in "${tools[@]}"; do
    command -v "$tool" >/dev/null || die "$tool not found (scripts/setup.sh installs prometheus, redis-server, curl, jq)"
done
"$PROMETHEUS_BIN" --version 2>&1 | head -1

# The binary may be rebuilt under us: wait for it for up to 2 minutes.
for _ in $(seq 120); do [ -x "$SESSIOND_BIN" ] && break; echo "live_check: waiting for $SESSIOND_BIN"; sleep 1; done
[ -x "$SESSIOND_BIN" ] || die "$SESSIOND_BIN not found; build it first (swift build)"
cp "$SESSIOND_BIN" "$tmp/sessiond"   # run a private copy so that a rebuild cannot pull it away

# ------------------------------------------------------------------------------------------------
# Stage sqlite: one instance on SQLite, the scripted day.
stage_sqlite() {
    local sessiond_port prometheus_port api prom failed_before=$failed
    read -r sessiond_port prometheus_port < <(free_ports 2)
    api="http://127.0.0.1:$sessiond_port"
    prom="http://127.0.0.1:$prometheus_port"
    echo "##### stage sqlite: one sessiond with SQLite storage"

    # SQLite storage (the default) in the temporary directory, never ./data in the repository; commit
    # durability (the default, spelled out: load.py verify relies on writes being answered after their commit).
    "$tmp/sessiond" --host 127.0.0.1 --port "$sessiond_port" --idle-timeout 2 --data-dir "$tmp/data" \
        --storage sqlite --durability commit >"$tmp/sessiond.log" 2>&1 &
    pids+=("$!")
    wait_http "$api/readyz" 20 || { cat "$tmp/sessiond.log"; die "sessiond did not start on $api"; }
    echo "sessiond pid ${pids[-1]} on $api"
    start_prometheus "$tmp/prometheus" "$prometheus_port" "127.0.0.1:$sessiond_port"
    wait_scraped "$prom" 1 || die "no scrape"

    step "sqlite: real scrape passes promtool check metrics (plain and gzip)" check_scrape "$api"

    step "sqlite: load ($LOAD_DURATION s)" "$PYTHON" prometheus/load.py run --url "$api" --duration "$LOAD_DURATION" \
        --summary "$tmp/summary.json"

    sleep 2   # one more scrape and rule evaluation
    step "sqlite: Prometheus saw exactly what the load caused" "$PYTHON" prometheus/load.py verify \
        --prometheus "$prom" --summary "$tmp/summary.json" --storage sqlite

    step "sqlite: every rule loaded and evaluates without error" check_rule_health "$prom"

    step "sqlite: dashboards + rules: live PromQL and real scrape" "$PYTHON" dashboards/check_dashboards.py \
        --live "$prom" --scrape "$api/metrics" --storage sqlite

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
        step "sqlite: render dashboards/sessiond-overview.png" render_png
    fi

    [ "$failed" = "$failed_before" ] || show_logs "$tmp/sessiond.log" "$tmp/prometheus/prometheus.log"
    stop_all
}

# ------------------------------------------------------------------------------------------------
# Stage redis: two instances sharing one Redis store.
stage_redis() {
    local redis_port port_a port_b prometheus_port api_a api_b prom redis_pid failed_before=$failed
    read -r redis_port port_a port_b prometheus_port < <(free_ports 4)
    api_a="http://127.0.0.1:$port_a"
    api_b="http://127.0.0.1:$port_b"
    prom="http://127.0.0.1:$prometheus_port"
    echo "##### stage redis: two sessiond instances sharing one redis-server"

    mkdir -p "$tmp/redis"
    "$REDIS_SERVER_BIN" --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$tmp/redis" >"$tmp/redis/redis.log" 2>&1 &
    redis_pid=$!
    pids+=("$redis_pid")
    for _ in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && break
        sleep 0.1
    done
    echo "redis-server pid $redis_pid on 127.0.0.1:$redis_port"

    local name port
    for name in a b; do
        [ "$name" = a ] && port=$port_a || port=$port_b
        "$tmp/sessiond" --host 127.0.0.1 --port "$port" --storage redis \
            --redis-url "redis://127.0.0.1:$redis_port" >"$tmp/sessiond-$name.log" 2>&1 &
        pids+=("$!")
        wait_http "http://127.0.0.1:$port/readyz" 20 || { cat "$tmp/sessiond-$name.log" "$tmp/redis/redis.log"; die "sessiond $name did not start on port $port"; }
        echo "sessiond $name pid ${pids[-1]} on http://127.0.0.1:$port"
    done
    start_prometheus "$tmp/prometheus-redis" "$prometheus_port" "127.0.0.1:$port_a" "127.0.0.1:$port_b"
    wait_scraped "$prom" 2 || die "no scrape"   # the short load must be seen from its start

    step "redis: real scrapes of A and B pass promtool check metrics (plain and gzip)" check_scrape "$api_a" "$api_b"

    step "redis: shared load (logins on A, validations and logouts on B)" "$PYTHON" prometheus/load.py shared-run \
        --url "$api_a" --url "$api_b" --summary "$tmp/shared-summary.json"

    sleep 2   # one more scrape and rule evaluation
    step "redis: Prometheus counts the shared store once" "$PYTHON" prometheus/load.py shared-verify \
        --prometheus "$prom" --summary "$tmp/shared-summary.json"

    step "redis: every rule loaded and evaluates without error" check_rule_health "$prom"

    step "redis: dashboards + rules: live PromQL and real scrape of A" "$PYTHON" dashboards/check_dashboards.py \
        --live "$prom" --scrape "$api_a/metrics" --storage redis
    step "redis: real scrape of B" "$PYTHON" dashboards/check_dashboards.py --scrape "$api_b/metrics" --storage redis

    stop "$redis_pid"
    forget_pid "$redis_pid"   # stopped: never signal that pid again
    echo "redis-server stopped"
    step "redis: Redis unreachable: 503 storage_unavailable, sessiond_redis_up 0, store gauges absent" \
        "$PYTHON" prometheus/load.py redis-down --url "$api_a" --url "$api_b" --prometheus "$prom"

    [ "$failed" = "$failed_before" ] || show_logs "$tmp/sessiond-a.log" "$tmp/sessiond-b.log" \
        "$tmp/redis/redis.log" "$tmp/prometheus-redis/prometheus.log"
    stop_all
}

[ "$stage" = redis ] || stage_sqlite
[ "$stage" = sqlite ] || stage_redis

echo "live_check: $(( $(date +%s) - started )) s"
echo "live_check: $passed passed, $failed failed"
[ "$failed" = 0 ]
