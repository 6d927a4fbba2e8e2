#!/usr/bin/env bash
# sessiond on one Redis server against sessiond on a Redis Cluster of three primaries, side by side in
# one run (release builds of the working tree; every redis-server on a free loopback port, no
# persistence, no replicas; the malloc settings of scripts/run.sh):
#
#   1. SESSIONS sessions (default 100,000) are loaded into each side (wrk POST /v1/sessions).
#   2. ROUNDS rounds (default 5) of SECONDS (default 10): wrk -t1 -c50 GET /v1/session (validate and
#      slide) and POST /v1/sessions against each side, back to back, alternating which goes first.
#      Each run reports req/s, p99, sessiond's CPU time per request and the Redis servers' CPU time
#      per request (user + system from /proc/PID/stat, summed over the side's servers).
#   3. The cluster side grows to BIG_SESSIONS sessions (default 1,000,000); 20 scrapes of /metrics.
#
#   Benchmarks/redis/cluster.sh [ROUNDS] [SECONDS]        (SESSIONS=…, BIG_SESSIONS=…)
#
# Ratios are the medians of the per-round ratios cluster/server. Both sides run the same sessiond,
# scripts and load generator on the same two cores; the cluster side adds the routing by slot and
# three Redis processes sharing those cores, so it cannot be faster here: the figures show what a
# request costs on a cluster.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-5}
SECONDS_PER_RUN=${2:-10}
SESSIONS=${SESSIONS:-100000}
BIG_SESSIONS=${BIG_SESSIONS:-1000000}
source Benchmarks/redis/common.sh

server_port=$(free_port)
start_redis "$work/server" "$server_port"
declare -A redis_pids=([server]=$(cat "$work/server/pid") [cluster]="")
cluster_ports=()
for node in 1 2 3; do
    node_port=$(free_port)
    start_redis "$work/node$node" "$node_port" --cluster-enabled yes --cluster-port "$(free_port)" \
        --cluster-require-full-coverage no
    redis_pids[cluster]+="$(cat "$work/node$node/pid") "
    cluster_ports+=("$node_port")
done
redis-cli --cluster create "${cluster_ports[@]/#/127.0.0.1:}" --cluster-yes >/dev/null
until redis-cli -p "${cluster_ports[2]}" cluster info | grep -q cluster_state:ok; do sleep 0.05; done

cluster_url=$(printf 'redis://127.0.0.1:%s,' "${cluster_ports[@]}")
declare -A port=([server]=$(free_port) [cluster]=$(free_port)) url=([server]="redis://127.0.0.1:$server_port" [cluster]="${cluster_url%,}")
for side in server cluster; do
    start_sessiond "$side" "${port[$side]}" --storage redis --redis-url "${url[$side]}"
done
wait_ready "${port[server]}" "${port[cluster]}"

wrk_run() {  # side script → "req/s p99 sessiond-µs/req redis-µs/req wrk-µs/req"
    measure "${port[$1]}" "$2" "${pid[$1]}" "${redis_pids[$1]}"
}

for side in server cluster; do
    export TOKENS_FILE="$work/tokens-$side"
    : > "$TOKENS_FILE"
    echo "$side: $(load_sessions "${port[$side]}" "$SESSIONS") sessions loaded"
done

declare -A get post get_p99 post_p99 get_cpu post_cpu get_redis post_redis
for round in $(seq "$ROUNDS"); do
    order=(server cluster)
    ((round % 2 == 0)) && order=(cluster server)
    for side in "${order[@]}"; do
        export TOKENS_FILE="$work/tokens-$side"
        read -r v v99 vc vr _ < <(wrk_run "$side" Benchmarks/http/validate.lua)
        read -r p p99 pc pr _ < <(wrk_run "$side" Benchmarks/http/create_measure.lua)
        echo "round $round $side: GET /v1/session $v req/s (p99 $v99, sessiond $vc µs/req, redis $vr µs/req)" \
            "| POST /v1/sessions $p req/s (p99 $p99, sessiond $pc µs/req, redis $pr µs/req)"
        get[$side]+="$v "; get_p99[$side]+="$v99 "; get_cpu[$side]+="$vc "; get_redis[$side]+="$vr "
        post[$side]+="$p "; post_p99[$side]+="$p99 "; post_cpu[$side]+="$pc "; post_redis[$side]+="$pr "
    done
done

echo
echo "== scrape with $BIG_SESSIONS sessions in the cluster"
export TOKENS_FILE="$work/tokens-big"
: > "$TOKENS_FILE"
active() { curl -s -H "Authorization: Bearer $API_TOKEN" "http://127.0.0.1:${port[cluster]}/metrics" | awk '/^sessiond_sessions_active/ {print $2}'; }
total=$(active)
while (( ${total%.*} < BIG_SESSIONS )); do
    wrk -t1 -c50 -d10s -s Benchmarks/http/create.lua "http://127.0.0.1:${port[cluster]}" >/dev/null
    total=$(active)
done
scrapes=()
for _ in $(seq 20); do
    scrapes+=("$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:${port[cluster]}/metrics")")
done

# shellcheck disable=SC2086 # word lists
summary() {  # name array
    local -n values=$2
    echo "$1: server $(median ${values[server]}), cluster $(median ${values[cluster]});" \
        "cluster/server per round $(paired_lists "${values[cluster]}" "${values[server]}")"
}
paired_lists() {  # "cluster values" "server values" → the median of the per-round ratios (the rounds)
    local ratios
    ratios=$(paste -d' ' <(tr ' ' '\n' <<<"$1" | sed '/^$/d') <(tr ' ' '\n' <<<"$2" | sed '/^$/d') \
        | awk '{printf "%.2f ", $1 / $2}')
    # shellcheck disable=SC2086 # one word per round
    echo "$(median $ratios) (rounds: $ratios)"
}
echo
summary "GET /v1/session req/s (median)" get
echo "GET /v1/session p99 per round: server ${get_p99[server]}; cluster ${get_p99[cluster]}"
summary "GET CPU µs/request, sessiond" get_cpu
summary "GET CPU µs/request, Redis servers" get_redis
summary "POST /v1/sessions req/s (median)" post
echo "POST /v1/sessions p99 per round: server ${post_p99[server]}; cluster ${post_p99[cluster]}"
summary "POST CPU µs/request, sessiond" post_cpu
summary "POST CPU µs/request, Redis servers" post_redis
echo "Scrape of /metrics with $total sessions in the cluster: median $(median "${scrapes[@]}") s of 20" \
    "(min $(printf '%s\n' "${scrapes[@]}" | sort -g | head -1), max $(printf '%s\n' "${scrapes[@]}" | sort -g | tail -1))"
