#!/usr/bin/env bash
# Storage benchmark: what durable storage costs over HTTP, and how long a restart takes.
#
#   Benchmarks/storage/run.sh [ROUNDS] [SECONDS]      (defaults: 3 rounds of 10 s)
#
# Four release sessiond processes run side by side: --storage memory, and sqlite with --durability
# commit, interval and fsync (data directories on the machine's disk, not tmpfs, so fsync is real).
# Each round measures, alternately, POST /v1/sessions on all four and GET /v1/session on memory and
# commit (wrk -t1 -c50, keep-alive). Then replay: a storage file of REPLAY_SESSIONS (default
# 1,000,000) sessions is written by make_db.py and sessiond is started on it REPLAY_RUNS (3) times;
# the replay time is read from its startup line (replay_ms) and the time to /readyz 200 is measured.
set -euo pipefail
cd "$(dirname "$0")/../.."
# sessiond runs with the malloc settings scripts/run.sh gives it (transparent huge pages); nothing else does.
source Benchmarks/stats.sh
SESSIOND_TUNABLES=$(unset GLIBC_TUNABLES; source scripts/malloc-tunables.sh; echo "$GLIBC_TUNABLES")
ROUNDS=${1:-3}
SECONDS_PER_RUN=${2:-10}
REPLAY_SESSIONS=${REPLAY_SESSIONS:-1000000}
REPLAY_RUNS=${REPLAY_RUNS:-3}
work=$(mktemp -d -p "${BENCH_DIR:-/var/tmp}")
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

swift build -c release --product sessiond >/dev/null
BIN=.build/release/sessiond
export API_TOKEN=bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$API_TOKEN" > "$work/api-token"
chmod 600 "$work/api-token"

start() {  # port args... → sets started_pid
    GLIBC_TUNABLES="$SESSIOND_TUNABLES" "$BIN" --port "$1" --api-token-file "$work/api-token" --log-level warning \
        "${@:2}" >/dev/null 2>>"$work/sessiond-$1.log" &
    started_pid=$!
}
wait_ready() {
    for _ in $(seq 600); do
        curl -fs "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "sessiond on port $1 did not become ready" >&2
    exit 1
}
start 18490 --storage memory; mem_pid=$started_pid
start 18491 --data-dir "$work/commit" --durability commit; commit_pid=$started_pid
start 18492 --data-dir "$work/interval" --durability interval; interval_pid=$started_pid
start 18494 --data-dir "$work/fsync" --durability fsync; fsync_pid=$started_pid
for port in 18490 18491 18492 18494; do wait_ready $port; done

wrk_run() {  # url script → "req/s p50 p99"
    local out
    out=$(wrk -t1 -c50 -d"${SECONDS_PER_RUN}s" --latency -s "$2" "$1")
    if grep -q "Non-2xx" <<<"$out"; then echo "non-2xx answers on $1: $(grep Non-2xx <<<"$out")" >&2; fi
    echo "$(awk '/Requests\/sec/ {print $2}' <<<"$out") $(awk '$1 == "50%" {print $2}' <<<"$out") $(awk '$1 == "99%" {print $2}' <<<"$out")"
}

echo "== preloading sessions for validation (memory and commit)"
for port in 18490 18491; do
    : > "$work/tokens-$port"
    TOKENS_FILE="$work/tokens-$port" wrk -t1 -c50 -d"${SECONDS_PER_RUN}s" -s Benchmarks/http/create.lua \
        "http://127.0.0.1:$port" | awk '/requests in/ {print "port '"$port"': " $1 " sessions"}'
done

post_mem=(); post_commit=(); post_interval=(); post_fsync=(); get_mem=(); get_commit=()
for round in $(seq "$ROUNDS"); do
    read -r pm pm50 pm99 < <(wrk_run http://127.0.0.1:18490 Benchmarks/http/create_measure.lua)
    read -r pc pc50 pc99 < <(wrk_run http://127.0.0.1:18491 Benchmarks/http/create_measure.lua)
    read -r pi pi50 pi99 < <(wrk_run http://127.0.0.1:18492 Benchmarks/http/create_measure.lua)
    read -r pf pf50 pf99 < <(wrk_run http://127.0.0.1:18494 Benchmarks/http/create_measure.lua)
    read -r gm gm50 gm99 < <(TOKENS_FILE="$work/tokens-18490" wrk_run http://127.0.0.1:18490 Benchmarks/http/validate.lua)
    read -r gc gc50 gc99 < <(TOKENS_FILE="$work/tokens-18491" wrk_run http://127.0.0.1:18491 Benchmarks/http/validate.lua)
    post_mem+=("$pm"); post_commit+=("$pc"); post_interval+=("$pi"); post_fsync+=("$pf"); get_mem+=("$gm"); get_commit+=("$gc")
    echo "round $round: POST memory $pm req/s (p99 $pm99) | commit $pc (p50 $pc50, p99 $pc99) | interval $pi (p99 $pi99) | fsync $pf (p50 $pf50, p99 $pf99)"
    echo "round $round: GET  memory $gm req/s (p99 $gm99) | commit $gc (p99 $gc99)"
done

mpm=$(median "${post_mem[@]}"); mpc=$(median "${post_commit[@]}"); mpi=$(median "${post_interval[@]}")
mpf=$(median "${post_fsync[@]}")
mgm=$(median "${get_mem[@]}"); mgc=$(median "${get_commit[@]}")
echo
echo "median POST /v1/sessions: memory $mpm, commit $mpc (ratio $(ratio "$mpc" "$mpm")), interval $mpi (ratio $(ratio "$mpi" "$mpm")), fsync $mpf (ratio $(ratio "$mpf" "$mpm"))"
echo "median GET /v1/session:   memory $mgm, commit $mgc (ratio $(ratio "$mgc" "$mgm"))"
echo "median of per-round ratios to memory: POST commit $(paired post_commit post_mem), interval $(paired post_interval post_mem), fsync $(paired post_fsync post_mem); GET commit $(paired get_commit get_mem)"
metrics=$(curl -fs http://127.0.0.1:18491/metrics)
commits=$(awk '$1 == "sessiond_storage_commits_total" {print $2}' <<<"$metrics")
writes=$(awk '$1 ~ /^sessiond_storage_writes_total/ {s += $2} END {print s}' <<<"$metrics")
echo "commit-mode storage: $writes rows in $commits commits ($(ratio "$writes" "$commits") per commit)"
fmetrics=$(curl -fs http://127.0.0.1:18494/metrics)
fcommits=$(awk '$1 == "sessiond_storage_commits_total" {print $2}' <<<"$fmetrics")
fwrites=$(awk '$1 ~ /^sessiond_storage_writes_total/ {s += $2} END {print s}' <<<"$fmetrics")
fsum=$(awk '$1 == "sessiond_storage_commit_duration_seconds_sum" {print $2}' <<<"$fmetrics")
echo "fsync-mode storage: $fwrites rows in $fcommits commits ($(ratio "$fwrites" "$fcommits") per commit), mean commit $(awk -v s="$fsum" -v c="$fcommits" 'BEGIN {printf "%.2f", 1000*s/c}') ms"
kill -TERM "$mem_pid" "$commit_pid" "$interval_pid" "$fsync_pid"
wait "$mem_pid" "$commit_pid" "$interval_pid" "$fsync_pid" 2>/dev/null || true

echo
echo "== replay of $REPLAY_SESSIONS sessions"
python3 Benchmarks/storage/make_db.py "$work/replay" "$REPLAY_SESSIONS"
replays=(); readies=()
for run in $(seq "$REPLAY_RUNS"); do
    : > "$work/replay.log"
    started=$(date +%s%N)
    GLIBC_TUNABLES="$SESSIOND_TUNABLES" "$BIN" --port 18493 --api-token-file "$work/api-token" --data-dir "$work/replay" \
        2>"$work/replay.log" &
    pid=$!
    wait_ready 18493
    ready_ms=$(( ($(date +%s%N) - started) / 1000000 ))
    replay_ms=$(grep -o 'replay_ms=[0-9]*' "$work/replay.log" | head -1 | cut -d= -f2)
    restored=$(grep -o 'restored=[0-9]*' "$work/replay.log" | head -1 | cut -d= -f2)
    rss=$(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status)
    echo "replay run $run: restored $restored in ${replay_ms} ms; process start to /readyz 200: ${ready_ms} ms; RSS $rss"
    replays+=("$replay_ms"); readies+=("$ready_ms")
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
done
echo "median replay: $(median "${replays[@]}") ms; median start to ready: $(median "${readies[@]}") ms"
