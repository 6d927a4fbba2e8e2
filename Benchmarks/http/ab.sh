#!/usr/bin/env bash
# Paired A/B of two builds of sessiond under the HTTP benchmark's load (the same wrk scripts as
# run.sh): GET /v1/session and POST /v1/sessions with wrk -t1 -c50, keep-alive, SESSIONS sessions
# loaded into each server first. Both servers run side by side (release, --storage memory, the malloc
# settings of scripts/run.sh); every round measures A and B back to back, alternating which goes first.
#
#   Benchmarks/http/ab.sh BASE_REV [ROUNDS] [SECONDS]     (A = BASE_REV, B = the working tree;
#                                                          defaults: 5 rounds of 10 s, SESSIONS=1000000)
#
# Prints each run and, per route, the medians and the median of the per-round ratios B/A.
set -euo pipefail
cd "$(dirname "$0")/../.."
source Benchmarks/stats.sh
BASE_REV=${1:?usage: Benchmarks/http/ab.sh BASE_REV [ROUNDS] [SECONDS]}
ROUNDS=${2:-5}
SECONDS_PER_RUN=${3:-10}
SESSIONS=${SESSIONS:-1000000}
SESSIOND_TUNABLES=$(unset GLIBC_TUNABLES; source scripts/malloc-tunables.sh; echo "$GLIBC_TUNABLES")
work=$(mktemp -d)
base_tree="$work/base"
trap 'kill $(jobs -p) 2>/dev/null || true; git worktree remove --force "$base_tree" 2>/dev/null || true; rm -rf "$work"' EXIT

echo "== building A ($BASE_REV) and B (working tree), release"
git worktree add --detach "$base_tree" "$BASE_REV" >/dev/null
swift build -c release --package-path "$base_tree" --product sessiond >/dev/null
swift build -c release --product sessiond >/dev/null
declare -A bin=([A]="$base_tree/.build/release/sessiond" [B]="$PWD/.build/release/sessiond")
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

wrk_run() {  # url script → "req/s p99"
    local out
    out=$(wrk -t1 -c50 -d"${SECONDS_PER_RUN}s" --latency -s "$2" "$1")
    if grep -q "Non-2xx" <<<"$out"; then echo "non-2xx answers: $(grep Non-2xx <<<"$out")" >&2; fi
    echo "$(awk '/Requests\/sec/ {print $2}' <<<"$out") $(awk '$1 == "99%" {print $2}' <<<"$out")"
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

get_a=(); get_b=(); post_a=(); post_b=()
for round in $(seq "$ROUNDS"); do
    order=(A B)
    ((round % 2 == 0)) && order=(B A)
    for side in "${order[@]}"; do
        export TOKENS_FILE="$work/tokens-$side"
        read -r v v99 < <(wrk_run "http://127.0.0.1:${port[$side]}" Benchmarks/http/validate.lua)
        read -r p p99 < <(wrk_run "http://127.0.0.1:${port[$side]}" Benchmarks/http/create_measure.lua)
        echo "round $round $side: GET /v1/session $v req/s (p99 $v99) | POST /v1/sessions $p req/s (p99 $p99)"
        if [ "$side" = A ]; then get_a+=("$v"); post_a+=("$p"); else get_b+=("$v"); post_b+=("$p"); fi
    done
done

echo
echo "A = $BASE_REV ($(git rev-parse --short "$BASE_REV")), B = working tree ($(git rev-parse --short HEAD)$(git diff --quiet || echo ', modified'))"
echo "GET /v1/session:   median A $(median "${get_a[@]}"), B $(median "${get_b[@]}") req/s; B/A per round $(paired get_b get_a)"
echo "POST /v1/sessions: median A $(median "${post_a[@]}"), B $(median "${post_b[@]}") req/s; B/A per round $(paired post_b post_a)"
kill -TERM "${pid[A]}" "${pid[B]}"
wait "${pid[A]}" "${pid[B]}" 2>/dev/null || true
