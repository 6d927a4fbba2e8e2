#!/usr/bin/env bash
# HTTP load benchmark: release sessiond against a minimal C libmicrohttpd server (the ceiling of this
# machine), measured alternately in the same run with wrk -t1 -c50 (keep-alive), 1,000,000 sessions loaded.
#
#   Benchmarks/http/run.sh [ROUNDS] [SECONDS]      (defaults: 3 rounds of 10 s)
#   Benchmarks/http/run.sh --ab REV_A [ROUNDS] [SECONDS]   paired A/B of two builds (Benchmarks/http/ab.sh)
#
# Prints req/s and latency for each round and the medians/ratios at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "${1:-}" = "--ab" ]; then
    shift
    exec Benchmarks/http/ab.sh "$@"
fi
# sessiond runs with the malloc settings scripts/run.sh gives it (transparent huge pages); nothing else does.
source Benchmarks/stats.sh
SESSIOND_TUNABLES=$(unset GLIBC_TUNABLES; source scripts/malloc-tunables.sh; echo "$GLIBC_TUNABLES")
ROUNDS=${1:-3}
SECONDS_PER_RUN=${2:-10}
SESSIONS=${SESSIONS:-1000000}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

swift build -c release --product sessiond >/dev/null
cc -O2 -o "$work/baseline" Benchmarks/http/baseline.c -lmicrohttpd

export API_TOKEN=bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$API_TOKEN" > "$work/api-token"
export TOKENS_FILE="$work/tokens"
: > "$TOKENS_FILE"
chmod 600 "$TOKENS_FILE" "$work/api-token"

GLIBC_TUNABLES="$SESSIOND_TUNABLES" .build/release/sessiond --port 18480 --api-token-file "$work/api-token" --storage memory \
    --log-level warning &
sessiond_pid=$!
"$work/baseline" 18481 2 &
baseline_pid=$!
"$work/baseline" 18482 2 session &
shaped_pid=$!
sleep 1

wrk_run() {  # url script → "req/s p50 p99"
    local out
    out=$(wrk -t1 -c50 -d"${SECONDS_PER_RUN}s" --latency ${2:+-s "$2"} "$1")
    local rps p50 p99
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    if grep -q "Non-2xx" <<<"$out"; then echo "non-2xx answers: $(grep Non-2xx <<<"$out")" >&2; fi
    echo "$rps $p50 $p99"
}

echo "== loading sessions with POST /v1/sessions (wrk -t1 -c50)"
create_runs=()
created=0
while ((created < SESSIONS)); do
    out=$(wrk -t1 -c50 -d"${SECONDS_PER_RUN}s" --latency -s Benchmarks/http/create.lua http://127.0.0.1:18480)
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    created=$((created + n))
    create_runs+=("$rps")
    echo "create: $rps req/s, p99 $p99 ($created sessions so far)"
done

# Each measured run is bracketed by a plain-GET run of the C ceiling just before and just after it,
# and its ratio is taken to the mean of the two: the shared machine drifts by ±15 % between runs,
# and a bracket cancels that drift better than one ceiling run measured earlier in the round.
# Two more C runs per round, driven by the same Lua scripts as the sessiond runs (wrk shares the 2
# cores with the server, and its per-request work lowers every figure):
#   - "C, same answer": the C server in session mode, which answers every GET like GET /v1/session
#     does (same three headers, a 244-byte body of the same shape): the ceiling for producing this
#     API's answer through libmicrohttpd, next to which sessiond's own work is measured;
#   - "C, POST script": the plain C server under the POST script.
validate_runs=(); post_runs=(); get_ceilings=(); post_ceilings=(); baseline_runs=()
shaped_runs=(); baseline_post_runs=(); get_p99s=()
mean() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (a + b) / 2}'; }
for round in $(seq "$ROUNDS"); do
    read -r b1 b1_p50 b1_p99 < <(wrk_run http://127.0.0.1:18481/)
    read -r v v_p50 v_p99 < <(wrk_run http://127.0.0.1:18480 Benchmarks/http/validate.lua)
    read -r s s_p50 s_p99 < <(wrk_run http://127.0.0.1:18482 Benchmarks/http/validate.lua)
    read -r b2 b2_p50 b2_p99 < <(wrk_run http://127.0.0.1:18481/)
    read -r p p_p50 p_p99 < <(wrk_run http://127.0.0.1:18480 Benchmarks/http/create_measure.lua)
    read -r b3 b3_p50 b3_p99 < <(wrk_run http://127.0.0.1:18481/)
    read -r bp bp_p50 bp_p99 < <(wrk_run http://127.0.0.1:18481 Benchmarks/http/create_measure.lua)
    validate_runs+=("$v"); post_runs+=("$p"); baseline_runs+=("$b1" "$b2" "$b3")
    get_ceilings+=("$(mean "$b1" "$b2")"); post_ceilings+=("$(mean "$b2" "$b3")")
    shaped_runs+=("$s"); baseline_post_runs+=("$bp")
    get_p99s+=("$v_p99")
    echo "round $round: C $b1 | GET /v1/session $v req/s (p50 $v_p50, p99 $v_p99) | C, same answer $s req/s (p99 $s_p99) | C $b2"
    echo "round $round: POST /v1/sessions $p req/s (p50 $p_p50, p99 $p_p99) | C $b3 | C, POST script $bp req/s (p99 $bp_p99)"
done

mb=$(median "${baseline_runs[@]}"); ms=$(median "${shaped_runs[@]}"); mv=$(median "${validate_runs[@]}")
mbp=$(median "${baseline_post_runs[@]}"); mp=$(median "${post_runs[@]}")
echo
echo "sessions loaded: $created"
echo "median C baseline (plain GET):               $mb req/s"
echo "median C baseline, same answer as sessiond:  $ms req/s"
echo "median GET /v1/session:   $mv req/s  ratio $(ratio "$mv" "$mb") of plain, $(ratio "$mv" "$ms") of the same-answer ceiling"
echo "median C baseline (POST script):             $mbp req/s"
echo "median POST /v1/sessions: $mp req/s  ratio $(ratio "$mp" "$mb") of plain, $(ratio "$mp" "$mbp") of same-script ceiling"
echo "median of per-round ratios to the plain ceiling around each run: GET $(paired validate_runs get_ceilings), POST $(paired post_runs post_ceilings)"
echo "median of per-round ratios of GET /v1/session to the same-answer ceiling: $(paired validate_runs shaped_runs)"
echo "GET /v1/session p99 per round: ${get_p99s[*]}"
echo "sessiond RSS: $(awk '/VmRSS/ {print $2, $3}' /proc/$sessiond_pid/status), in huge pages: $(awk '/AnonHugePages/ {print $2, $3}' /proc/$sessiond_pid/smaps_rollup)"
kill -TERM "$sessiond_pid" "$baseline_pid" "$shaped_pid"
wait "$sessiond_pid" "$baseline_pid" "$shaped_pid" 2>/dev/null || true
