#!/usr/bin/env bash
# sessiond with --storage redis against --storage memory, side by side in one run (release builds of
# the working tree, one redis-server on a free loopback port, the malloc settings of scripts/run.sh):
#
#   1. SESSIONS sessions (default 100,000) are loaded into each server (POST /v1/sessions over
#      100,000 users, every 10th token kept for the validations).
#   2. ROUNDS rounds (default 5) of SECONDS (default 10): wrk -t1 -c50 GET /v1/session (validate and
#      slide) and POST /v1/sessions against each server, back to back, alternating which goes first.
#      Each run reports req/s, p99, sessiond's CPU time per request, wrk's, and for the Redis side
#      redis-server's (user + system from /proc/PID/stat; wrk's from the shell's `times`).
#   3. Redis's own ceiling: redis-benchmark -c 50 of the validate function itself (FCALL sd1_validate
#      of one live session) at -P 1 and -P 16, and of GET.
#   4. Redis memory per session: used_memory growth while the sessions were loaded, divided by them.
#   5. A scrape of /metrics with BIG_SESSIONS sessions in Redis (default 1,000,000): median of 20.
#
#   Benchmarks/redis/run.sh [ROUNDS] [SECONDS]        (SESSIONS=…, BIG_SESSIONS=…, APPENDFSYNC=always|everysec|no)
#
# Ratios are the medians of the per-round ratios redis/memory (the servers of a round ran back to
# back). They include everything between the socket and the answer: libmicrohttpd, routing, and for
# the Redis side the round trip to redis-server and its work, on the same two cores as wrk.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-5}
SECONDS_PER_RUN=${2:-10}
SESSIONS=${SESSIONS:-100000}
BIG_SESSIONS=${BIG_SESSIONS:-1000000}
APPENDFSYNC=${APPENDFSYNC:-no}
source Benchmarks/redis/common.sh

redis_port=$(free_port)
persistence=(--appendonly no)
[ "$APPENDFSYNC" != no ] && persistence=(--appendonly yes --appendfsync "$APPENDFSYNC")
start_redis "$work/redis" "$redis_port" "${persistence[@]}"
redis_pid=$(cat "$work/redis/pid")
used_memory() { redis-cli -p "$redis_port" info memory | awk -F: '/^used_memory:/ {print $2+0}'; }
memory_empty=$(used_memory)

declare -A port=([redis]=$(free_port) [memory]=$(free_port))
start_sessiond redis "${port[redis]}" --storage redis --redis-url "redis://127.0.0.1:$redis_port"
start_sessiond memory "${port[memory]}" --storage memory
wait_ready "${port[redis]}" "${port[memory]}"

wrk_run() {  # side script → "req/s p99 sessiond-µs/req redis-µs/req wrk-µs/req"
    measure "${port[$1]}" "$2" "${pid[$1]}" "$redis_pid"
}

for side in redis memory; do
    export TOKENS_FILE="$work/tokens-$side"
    : > "$TOKENS_FILE"
    created=$(load_sessions "${port[$side]}" "$SESSIONS")
    echo "$side: $created sessions loaded"
    [ "$side" = redis ] && redis_sessions=$created && memory_loaded=$(used_memory)
done

get_r=(); get_m=(); post_r=(); post_m=(); get_cpu_r=(); get_cpu_m=(); post_cpu_r=(); post_cpu_m=()
get_redis_cpu=(); post_redis_cpu=(); get_p99_r=(); get_p99_m=(); post_wrk_r=(); post_wrk_m=()
for round in $(seq "$ROUNDS"); do
    order=(redis memory)
    ((round % 2 == 0)) && order=(memory redis)
    for side in "${order[@]}"; do
        export TOKENS_FILE="$work/tokens-$side"
        read -r v v99 vc vr vw < <(wrk_run "$side" Benchmarks/http/validate.lua)
        read -r p p99 pc pr pw < <(wrk_run "$side" Benchmarks/http/create_measure.lua)
        echo "round $round $side: GET /v1/session $v req/s (p99 $v99, sessiond $vc µs/req, redis-server $vr µs/req," \
            "wrk $vw µs/req) | POST /v1/sessions $p req/s (p99 $p99, sessiond $pc µs/req, redis-server $pr µs/req," \
            "wrk $pw µs/req)"
        if [ "$side" = redis ]; then
            get_r+=("$v"); post_r+=("$p"); get_cpu_r+=("$vc"); post_cpu_r+=("$pc")
            get_redis_cpu+=("$vr"); post_redis_cpu+=("$pr"); get_p99_r+=("$v99"); post_wrk_r+=("$pw")
        else
            get_m+=("$v"); post_m+=("$p"); get_cpu_m+=("$vc"); post_cpu_m+=("$pc"); get_p99_m+=("$v99")
            post_wrk_m+=("$pw")
        fi
    done
done

echo
echo "== redis-benchmark -c 50 (Redis's own ceiling here)"
python3 Benchmarks/redis/fcall_benchmark.py "$redis_port" "$work/tokens-redis"

echo
echo "== scrape with $BIG_SESSIONS sessions in Redis"
export TOKENS_FILE="$work/tokens-big"
: > "$TOKENS_FILE"
total=$(redis-cli -p "$redis_port" --no-raw eval "local n = 0 for p = 0, 127 do n = n + redis.call('ZCARD', 'sd:{' .. p .. '}:all') end return n" 0 | tr -dc 0-9)
while ((total < BIG_SESSIONS)); do
    out=$(wrk -t1 -c50 -d10s -s Benchmarks/http/create.lua "http://127.0.0.1:${port[redis]}")
    total=$((total + $(awk '/requests in/ {print $1}' <<<"$out")))
done
memory_big=$(used_memory)
scrapes=()
for _ in $(seq 20); do
    scrapes+=("$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:${port[redis]}/metrics")")
done
active=$(curl -s "http://127.0.0.1:${port[redis]}/metrics" | awk '/^sessiond_sessions_active/ {print $2}')

echo
echo "GET /v1/session:   median redis $(median "${get_r[@]}"), memory $(median "${get_m[@]}") req/s;" \
    "redis/memory per round $(paired get_r get_m)"
echo "                   p99: median redis $(median "${get_p99_r[@]}" 2>/dev/null || echo '?'); memory $(printf '%s ' "${get_p99_m[@]}")"
echo "                   p99 redis per round: ${get_p99_r[*]}"
echo "                   CPU µs/request: sessiond redis $(median "${get_cpu_r[@]}"), memory $(median "${get_cpu_m[@]}");" \
    "redis-server $(median "${get_redis_cpu[@]}")"
echo "POST /v1/sessions: median redis $(median "${post_r[@]}"), memory $(median "${post_m[@]}") req/s;" \
    "redis/memory per round $(paired post_r post_m)"
echo "                   CPU µs/request: sessiond redis $(median "${post_cpu_r[@]}"), memory $(median "${post_cpu_m[@]}");" \
    "redis-server $(median "${post_redis_cpu[@]}"); wrk redis $(median "${post_wrk_r[@]}"), memory $(median "${post_wrk_m[@]}")"
echo "Redis memory per session: $(( (memory_loaded - memory_empty) / redis_sessions )) bytes" \
    "($redis_sessions sessions; $(( (memory_big - memory_empty) / total )) bytes at $total)"
echo "Scrape of /metrics with $active sessions in Redis: median $(median "${scrapes[@]}") s of 20" \
    "(min $(printf '%s\n' "${scrapes[@]}" | sort -g | head -1), max $(printf '%s\n' "${scrapes[@]}" | sort -g | tail -1))"
kill -TERM "${pid[redis]}" "${pid[memory]}" "$redis_pid"
wait "${pid[redis]}" "${pid[memory]}" "$redis_pid" 2>/dev/null || true
