#!/usr/bin/env bash
# What `--redis-wait-replicas 1` costs: one redis-server primary with one replica (both on free
# loopback ports, no persistence) and two release sessiond side by side on that primary, one with
# `--redis-wait-replicas 1` ("wait"), one without ("plain"). SESSIONS sessions (default 50,000) are
# loaded through the plain one, then ROUNDS rounds (default 5) of SECONDS (default 5), alternating
# which side goes first, of the same wrk scripts on both sides: `wrk -t1 -c50` of POST /v1/sessions
# (`create_measure.lua`: every call writes and waits for the replica) and of a mix,
# `mixed.lua` (9 validations of the loaded tokens to 1 login: the reads a `WAIT` must not hold up).
#
#   Benchmarks/redis/replicas.sh [ROUNDS] [SECONDS]        (SESSIONS=…)
#
# The ratio is the median of the per-round ratios wait/plain; both include everything between the
# socket and the answer, the wait side also the replica's confirmation. Both sides share one Redis
# and its replica, so a round's store is the same for both.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-5}
SECONDS_PER_RUN=${2:-5}
SESSIONS=${SESSIONS:-50000}
source Benchmarks/redis/common.sh

primary=$(free_port)
replica=$(free_port)
start_redis "$work/primary" "$primary"
start_redis "$work/replica" "$replica" --replicaof 127.0.0.1 "$primary"
until redis-cli -p "$replica" info replication 2>/dev/null | grep -q "master_link_status:up"; do sleep 0.1; done

declare -A port=([plain]=$(free_port) [wait]=$(free_port))
start_sessiond plain "${port[plain]}" --storage redis --redis-url "redis://127.0.0.1:$primary"
start_sessiond wait "${port[wait]}" --storage redis --redis-url "redis://127.0.0.1:$primary" --redis-wait-replicas 1
wait_ready "${port[plain]}" "${port[wait]}"

export TOKENS_FILE="$work/tokens"
: > "$TOKENS_FILE"
echo "$(load_sessions "${port[plain]}" "$SESSIONS") sessions loaded"

create_plain=(); create_wait=(); mixed_plain=(); mixed_wait=()
for round in $(seq "$ROUNDS"); do
    order=(plain wait)
    ((round % 2 == 0)) && order=(wait plain)
    for side in "${order[@]}"; do
        read -r c c99 _ < <(measure "${port[$side]}" Benchmarks/http/create_measure.lua "" "")
        read -r m m99 _ < <(measure "${port[$side]}" Benchmarks/http/mixed.lua "" "")
        echo "round $round $side: POST /v1/sessions $c req/s (p99 $c99) | mixed $m req/s (p99 $m99)"
        if [ "$side" = plain ]; then create_plain+=("$c"); mixed_plain+=("$m"); else create_wait+=("$c"); mixed_wait+=("$m"); fi
    done
done
echo
echo "POST /v1/sessions: median plain $(median "${create_plain[@]}"), wait $(median "${create_wait[@]}") req/s;" \
    "wait/plain per round $(paired create_wait create_plain)"
echo "mixed:             median plain $(median "${mixed_plain[@]}"), wait $(median "${mixed_wait[@]}") req/s;" \
    "wait/plain per round $(paired mixed_wait mixed_plain)"
waits=$(redis-cli -p "$primary" info commandstats | awk -F'[=,]' '/^cmdstat_wait:/ {print $2}')
logins=$(curl -s "http://127.0.0.1:${port[wait]}/metrics" | awk '/^sessiond_sessions_created_total/ {print $2}')
echo "WAIT commands on the primary: $waits for the wait side's $logins logins" \
    "($(awk -v w="$waits" -v l="$logins" 'BEGIN {printf "%.3f", w / l}') per login)"
