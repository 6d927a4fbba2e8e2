#!/usr/bin/env bash
# Paired A/B of two builds of sessiond under the HTTP benchmark's load (the same wrk scripts as
# run.sh): GET /v1/session and POST /v1/sessions with wrk -t1 -c50, keep-alive, SESSIONS sessions
# loaded into each server first. Both servers run side by side (release, --storage memory, the malloc
# settings of scripts/run.sh); every round measures A and B back to back, alternating which goes first.
#
#   Benchmarks/http/ab.sh REV_A [ROUNDS] [SECONDS]         (B = the working tree)
#   REV_B=<rev> Benchmarks/http/ab.sh REV_A [ROUNDS] [SECONDS]   (B = REV_B, built in a worktree too)
#   defaults: 5 rounds of 10 s, SESSIONS=1000000
#
# Prints each run and, per route, the medians and the median of the per-round ratios B/A of req/s,
# and of sessiond's CPU time per request (user + system, from /proc/PID/stat), which the shared
# machine's drift disturbs less than req/s: wrk and the server share the two cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
source Benchmarks/stats.sh
BASE_REV=${1:?usage: Benchmarks/http/ab.sh BASE_REV [ROUNDS] [SECONDS]}
ROUNDS=${2:-5}
SECONDS_PER_RUN=${3:-10}
SESSIONS=${SESSIONS:-1000000}
SESSIOND_TUNABLES=$(unset GLIBC_TUNABLES; source scripts/malloc-tunables.sh; echo "$GLIBC_TUNABLES")
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; for tree in "$work"/tree-*; do git worktree remove --force "$tree" 2>/dev/null || true; done; rm -rf "$work"' EXIT

build() {  # rev → path of its release sessiond (built in a worktree of its own)
    local tree="$work/tree-$1"
    git worktree add --detach "$tree" "$1" >/dev/null
    swift build -c release --package-path "$tree" --product sessiond >/dev/null
    echo "$tree/.build/release/sessiond"
}
echo "== building A ($BASE_REV) and B (${REV_B:-working tree}), release"
declare -A bin
bin[A]=$(build "$BASE_REV")
if [ -n "${REV_B:-}" ]; then
    bin[B]=$(build "$REV_B")
else
    swift build -c release --product sessiond >/dev/null
    bin[B]="$PWD/.build/release/sessiond"
fi
declare -A port=([A]=18490 [B]=18491)

export API_TOKEN=bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$API_TOKEN" > "$work/api-token"
chmod 600 "$work/api-token"
declare -A pid
for side in A B; do
    GLIBC_TUNABLES="$SESSIOND_TUNABLES" "${bin[$side]}" --port "${port[$side]}" --api-token-file "$work/api-token" \
        --storage memory --log-level warning &
    pid[$side]=$!
done
sleep 1


wrk_run() {  # side url script → "req/s p99 µs-of-sessiond-CPU-per-request"
    local out before after requests
    before=$(cpu_ticks "${pid[$1]}")
    out=$(wrk -t1 -c50 -d"${SECONDS_PER_RUN}s" --latency -s "$3" "$2")
    after=$(cpu_ticks "${pid[$1]}")
    if grep -q "Non-2xx" <<<"$out"; then echo "non-2xx answers: $(grep Non-2xx <<<"$out")" >&2; fi
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    echo "$(awk '/Requests\/sec/ {print $2}' <<<"$out") $(awk '$1 == "99%" {print $2}' <<<"$out")" \
        "$(awk -v t=$((after - before)) -v n="$requests" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')"
}

for side in A B; do
    export TOKENS_FILE="$work/tokens-$side"
    : > "$TOKENS_FILE"
    created=0
    while ((created < SESSIONS)); do
        out=$(wrk -t1 -c50 -d"${SECONDS_PER_RUN}s" -s Benchmarks/http/create.lua "http://127.0.0.1:${port[$side]}")
        created=$((created + $(awk '/requests in/ {print $1}' <<<"$out")))
    done
    echo "$side: $created sessions loaded"
done

get_a=(); get_b=(); post_a=(); post_b=(); get_cpu_a=(); get_cpu_b=(); post_cpu_a=(); post_cpu_b=()
for round in $(seq "$ROUNDS"); do
    order=(A B)
    ((round % 2 == 0)) && order=(B A)
    for side in "${order[@]}"; do
        export TOKENS_FILE="$work/tokens-$side"
        read -r v v99 vc < <(wrk_run "$side" "http://127.0.0.1:${port[$side]}" Benchmarks/http/validate.lua)
        read -r p p99 pc < <(wrk_run "$side" "http://127.0.0.1:${port[$side]}" Benchmarks/http/create_measure.lua)
        echo "round $round $side: GET /v1/session $v req/s (p99 $v99, $vc µs CPU/req)" \
            "| POST /v1/sessions $p req/s (p99 $p99, $pc µs CPU/req)"
        if [ "$side" = A ]; then
            get_a+=("$v"); post_a+=("$p"); get_cpu_a+=("$vc"); post_cpu_a+=("$pc")
        else
            get_b+=("$v"); post_b+=("$p"); get_cpu_b+=("$vc"); post_cpu_b+=("$pc")
        fi
    done
done

echo
echo "A = $BASE_REV ($(git rev-parse --short "$BASE_REV")), B = ${REV_B:-working tree} ($(git rev-parse --short "${REV_B:-HEAD}")$( [ -n "${REV_B:-}" ] || git diff --quiet || echo ', modified'))"
echo "GET /v1/session:   median A $(median "${get_a[@]}"), B $(median "${get_b[@]}") req/s; B/A per round $(paired get_b get_a)"
echo "                   sessiond CPU µs/request: median A $(median "${get_cpu_a[@]}"), B $(median "${get_cpu_b[@]}"); B/A per round $(paired get_cpu_b get_cpu_a)"
echo "POST /v1/sessions: median A $(median "${post_a[@]}"), B $(median "${post_b[@]}") req/s; B/A per round $(paired post_b post_a)"
echo "                   sessiond CPU µs/request: median A $(median "${post_cpu_a[@]}"), B $(median "${post_cpu_b[@]}"); B/A per round $(paired post_cpu_b post_cpu_a)"
kill -TERM "${pid[A]}" "${pid[B]}"
wait "${pid[A]}" "${pid[B]}" 2>/dev/null || true
