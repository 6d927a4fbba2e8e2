# Sourced, from the repository's root, by the Redis benchmarks (run.sh, cluster.sh, replicas.sh):
# builds the release sessiond, makes a work directory and an API token, and gives the helpers that
# start redis-server and sessiond (killed, and the directory removed, when the script exits), load
# sessions, and run one measured wrk round. Uses SECONDS_PER_RUN, set by the script.
source Benchmarks/stats.sh
SESSIOND_TUNABLES=$(unset GLIBC_TUNABLES; source scripts/malloc-tunables.sh; echo "$GLIBC_TUNABLES")
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "== building sessiond (release)"
swift build -c release --product sessiond >/dev/null
bin="$PWD/.build/release/sessiond"

export API_TOKEN=bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$API_TOKEN" > "$work/api-token"
chmod 600 "$work/api-token"

start_redis() {  # dir port [args…]: no persistence unless args say otherwise; its pid in dir/pid
    local dir=$1 port=$2
    shift 2
    mkdir -p "$dir"
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
        --logfile "$dir/redis.log" "$@" &
    echo $! > "$dir/pid"
    until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done
}

declare -A pid
start_sessiond() {  # name port [args…]: a release sessiond with the malloc settings of scripts/run.sh; pid[name]
    local name=$1 port=$2
    shift 2
    GLIBC_TUNABLES="$SESSIOND_TUNABLES" "$bin" --port "$port" --api-token-file "$work/api-token" \
        --log-level warning "$@" &
    pid[$name]=$!
}

wait_ready() {  # port…
    local port
    for port in "$@"; do
        until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.1; done
    done
}

load_sessions() {  # port count → the sessions created: whole 5 s rounds of create.lua (tokens to TOKENS_FILE)
    local created=0 out
    while ((created < $2)); do
        out=$(wrk -t1 -c50 -d5s -s Benchmarks/http/create.lua "http://127.0.0.1:$1")
        created=$((created + $(awk '/requests in/ {print $1}' <<<"$out")))
    done
    echo "$created"
}

# measure port script "sessiond pids" "redis pids" → "req/s p99 sessiond-µs/req redis-µs/req wrk-µs/req":
# one round of SECONDS_PER_RUN of wrk -t1 -c50, and the CPU time per request of each (redis 0 with no pids)
measure() {
    local out before redis_before after redis_after requests wrk_us
    # shellcheck disable=SC2086 # lists of pids
    before=$(cpu_ticks $3); redis_before=$(cpu_ticks $4)
    # `times` in the command substitution's shell: its last line is the CPU time of its child, wrk.
    out=$(wrk -t1 -c50 -d"${SECONDS_PER_RUN}s" --latency -s "$2" "http://127.0.0.1:$1"; times)
    # shellcheck disable=SC2086
    after=$(cpu_ticks $3); redis_after=$(cpu_ticks $4)
    if grep -q "Non-2xx" <<<"$out"; then echo "non-2xx answers ($2): $(grep Non-2xx <<<"$out")" >&2; fi
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    wrk_us=$(tail -1 <<<"$out" | awk '{split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.0f", (u[1] * 60 + u[2] + s[1] * 60 + s[2]) * 1e6}')
    echo "$(awk '/Requests\/sec/ {print $2}' <<<"$out") $(awk '$1 == "99%" {print $2}' <<<"$out")" \
        "$(per_request $((after - before)) "$requests") $(per_request $((redis_after - redis_before)) "$requests")" \
        "$(awk -v t="$wrk_us" -v n="$requests" 'BEGIN {printf "%.2f", t / n}')"
}
