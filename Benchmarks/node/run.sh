#!/usr/bin/env bash
# Node client benchmark: SessionManager.checkSessionStatus (GET /v1/session?refresh=false) from one
# Node process with 50 calls in flight, against wrk -t1 -c50 sending the same request to the same
# release sessiond (--storage memory, API token), alternately in the same run, with two references
# measured the same way (bench.js: a bare node:http GET, a minimal node:net exchange); then the
# latency of one call (1 in flight) of the client and of both references.
#
#   Benchmarks/node/run.sh [ROUNDS] [SECONDS]      (defaults: 3 rounds of 10 s per side)
#
# Environment: SESSIONS (default 5000) sessions created first; SESSIOND_BIN (default
# .build/release/sessiond; this script does not build it); PORT (default 18490).
set -euo pipefail
cd "$(dirname "$0")/../.."
source Benchmarks/stats.sh
ROUNDS=${1:-3}
SECONDS_PER_RUN=${2:-10}
SESSIONS=${SESSIONS:-5000}
PORT=${PORT:-18490}
BIN=${SESSIOND_BIN:-.build/release/sessiond}
if [ ! -x "$BIN" ]; then
    echo "no sessiond at $BIN: build it first (swift build -c release --product sessiond)" >&2
    exit 1
fi
# sessiond runs with the malloc settings scripts/run.sh gives it, as in Benchmarks/http/run.sh.
SESSIOND_TUNABLES=$(unset GLIBC_TUNABLES; source scripts/malloc-tunables.sh; echo "$GLIBC_TUNABLES")
work=$(mktemp -d)
sessiond_pid=
cleanup() {
    if [ -n "$sessiond_pid" ]; then kill -TERM "$sessiond_pid" 2>/dev/null || true; wait "$sessiond_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

export API_TOKEN=bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$API_TOKEN" > "$work/api-token"
chmod 600 "$work/api-token"
export TOKENS_FILE="$work/tokens"
export SESSIOND_URL="http://127.0.0.1:$PORT"

GLIBC_TUNABLES="$SESSIOND_TUNABLES" "$BIN" --host 127.0.0.1 --port "$PORT" --api-token-file "$work/api-token" \
    --storage memory --log-level warning &
sessiond_pid=$!
for _ in $(seq 100); do
    if curl -sf "$SESSIOND_URL/readyz" >/dev/null; then break; fi
    sleep 0.1
done
curl -sf "$SESSIOND_URL/readyz" >/dev/null || { echo "sessiond did not become ready" >&2; exit 1; }

echo "== node $(node --version), $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2), $SESSIONS sessions, $ROUNDS rounds of ${SECONDS_PER_RUN} s per side"
node Benchmarks/node/bench.js setup "$SESSIONS"

wrk_run() {  # → "req/s p50_ms p99_ms"
    local out rps p50 p99
    out=$(VALIDATE_PATH='/v1/session?refresh=false' wrk -t1 -c50 -d"${SECONDS_PER_RUN}s" --latency \
        -s Benchmarks/http/validate.lua "$SESSIOND_URL")
    if grep -q "Non-2xx" <<<"$out"; then echo "wrk: $(grep Non-2xx <<<"$out")" >&2; exit 1; fi
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    echo "$rps $p50 $p99"
}
node_run() {  # path → "req/s p50_ms p99_ms cpu_us_per_call"
    node Benchmarks/node/bench.js throughput "$1" "$SECONDS_PER_RUN" 50
}

# Each round measures four senders of the same request, each for SECONDS_PER_RUN, in an order that
# reverses every round: the client, a bare node:http GET (the floor of any node:http client), a
# minimal node:net HTTP/1.1 exchange (what the Node runtime allows), and wrk.
client_runs=(); http_runs=(); net_runs=(); wrk_runs=(); client_cpus=(); http_cpus=(); net_cpus=()
echo
echo "| round | order | client req/s (p50, p99 ms; Node CPU µs/call) | bare node:http req/s (CPU µs/call) | minimal node:net req/s (CPU µs/call) | wrk req/s (p50, p99) | client/wrk |"
echo "|---:|---|---:|---:|---:|---:|---:|"
for round in $(seq "$ROUNDS"); do
    if ((round % 2 == 1)); then
        order="client, http, net, wrk"
        read -r c c50 c99 ccpu < <(node_run client)
        read -r h h50 h99 hcpu < <(node_run http)
        read -r n n50 n99 ncpu < <(node_run net)
        read -r w w50 w99 < <(wrk_run)
    else
        order="wrk, net, http, client"
        read -r w w50 w99 < <(wrk_run)
        read -r n n50 n99 ncpu < <(node_run net)
        read -r h h50 h99 hcpu < <(node_run http)
        read -r c c50 c99 ccpu < <(node_run client)
    fi
    for value in "$c" "$h" "$n" "$w"; do
        if [ -z "$value" ]; then echo "a run of round $round failed (see above)" >&2; exit 1; fi
    done
    client_runs+=("$c"); http_runs+=("$h"); net_runs+=("$n"); wrk_runs+=("$w"); client_cpus+=("$ccpu"); http_cpus+=("$hcpu"); net_cpus+=("$ncpu")
    echo "| $round | $order | $c ($c50, $c99; $ccpu) | $h ($hcpu) | $n ($ncpu) | $w ($w50, $w99) | $(ratio "$c" "$w") |"
done
mc=$(median "${client_runs[@]}"); mh=$(median "${http_runs[@]}"); mn=$(median "${net_runs[@]}"); mw=$(median "${wrk_runs[@]}")
echo
echo "median client (checkSessionStatus): $mc req/s"
echo "median bare node:http:              $mh req/s"
echo "median minimal node:net:            $mn req/s"
echo "median wrk:                         $mw req/s"
echo "client/wrk: ratio of medians $(ratio "$mc" "$mw"), median of per-round ratios $(paired client_runs wrk_runs)"
echo "client/bare node:http: $(paired client_runs http_runs)"
echo "bare node:http/wrk:    $(paired http_runs wrk_runs)"
echo "minimal node:net/wrk:  $(paired net_runs wrk_runs)"
echo "median Node CPU per call: client $(median "${client_cpus[@]}") µs, bare node:http $(median "${http_cpus[@]}") µs, minimal node:net $(median "${net_cpus[@]}") µs"
echo
echo "== latency, 1 call in flight"
node Benchmarks/node/bench.js latency 20000
