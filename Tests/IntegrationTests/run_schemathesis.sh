#!/usr/bin/env bash
# Property-based API conformance run: schemathesis against openapi.yaml and a real sessiond.
#
# Checks: no 5xx (not_a_server_error), documented status codes, documented content types, response
# bodies matching their schemas. Bounded: ~30 examples per operation, a hard timeout per pass.
# Installs schemathesis (4.x) into Tests/IntegrationTests/.venv-it if missing. Always stops sessiond.
#
# Env: SESSIOND_BIN (default .build/debug/sessiond), SESSIOND_TEST_STORAGE (sqlite), VENV_IT, ST_MAX_EXAMPLES (30), ST_SEED, ST_TIMEOUT (150 s).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="${VENV_IT:-$HERE/.venv-it}"
BIN="${SESSIOND_BIN:-$REPO/.build/debug/sessiond}"
MAX_EXAMPLES="${ST_MAX_EXAMPLES:-30}"
SEED="${ST_SEED:-20251129}"
PASS_TIMEOUT="${ST_TIMEOUT:-150}"

if [[ ! -x "$BIN" ]]; then
    echo "run_schemathesis: sessiond binary not found at $BIN (set SESSIOND_BIN)" >&2
    exit 2
fi

if ! "$VENV/bin/schemathesis" --version >/dev/null 2>&1; then
    echo "run_schemathesis: installing schemathesis into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check 'schemathesis>=4,<5'
fi
PY="$VENV/bin/python"
"$VENV/bin/schemathesis" --version

WORK="$(mktemp -d)"
PID=""
REDIS_PID=""
cleanup() {
    if [[ -n "$PID" ]] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    if [[ -n "$REDIS_PID" ]]; then
        # shellcheck disable=SC2086 # one pid, or the three of a cluster
        kill -TERM $REDIS_PID 2>/dev/null || true
        # shellcheck disable=SC2086
        wait $REDIS_PID 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

PORT="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
API_TOKEN="st-$("$PY" -c 'import secrets; print(secrets.token_urlsafe(32))')"
printf '%s' "$API_TOKEN" > "$WORK/api-token"
chmod 600 "$WORK/api-token"
BASE="http://127.0.0.1:$PORT"

STORAGE_ARGS=(--storage "${SESSIOND_TEST_STORAGE:-sqlite}")
if [[ "${SESSIOND_TEST_STORAGE:-sqlite}" == redis && "${SESSIOND_TEST_REDIS:-standalone}" == cluster ]]; then
    # A Redis Cluster of this run's own: three primaries on free loopback ports.
    URLS=()
    ADDRESSES=()
    for node in 1 2 3; do
        NODE_PORT="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
        mkdir -p "$WORK/redis$node"
        BUS_PORT="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
        redis-server --port "$NODE_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK/redis$node" \
            --cluster-enabled yes --cluster-node-timeout 1000 --cluster-port "$BUS_PORT" \
            --logfile "$WORK/redis$node/redis.log" &
        REDIS_PID="$REDIS_PID $!"
        for _ in $(seq 100); do redis-cli -p "$NODE_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
        URLS+=("redis://127.0.0.1:$NODE_PORT")
        ADDRESSES+=("127.0.0.1:$NODE_PORT")
    done
    redis-cli --cluster create "${ADDRESSES[@]}" --cluster-yes >/dev/null
    for _ in $(seq 200); do
        redis-cli -p "${ADDRESSES[2]##*:}" cluster info | grep -q cluster_state:ok && break
        sleep 0.05
    done
    STORAGE_ARGS+=(--redis-url "$(IFS=,; echo "${URLS[*]}")")
elif [[ "${SESSIOND_TEST_STORAGE:-sqlite}" == redis ]]; then
    # A redis-server of this run's own, on a free loopback port.
    REDIS_PORT="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" \
        --logfile "$WORK/redis.log" &
    REDIS_PID=$!
    for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
    STORAGE_ARGS+=(--redis-url "redis://127.0.0.1:$REDIS_PORT")
fi

# --data-dir: the SQLite storage goes to the temporary directory, never ./data in the repository.
"$BIN" --host 127.0.0.1 --port "$PORT" --api-token-file "$WORK/api-token" --data-dir "$WORK/data" \
    "${STORAGE_ARGS[@]}" \
    >"$WORK/stdout.log" 2>"$WORK/stderr.log" &
PID=$!

"$PY" - "$BASE" <<'PYEOF'
import sys, time, urllib.request
base = sys.argv[1]
end = time.time() + 20
while time.time() < end:
    try:
        if urllib.request.urlopen(base + "/readyz", timeout=1).status == 200:  # storage replayed
            sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit("sessiond did not become ready")
PYEOF

new_session() {
    "$PY" - "$BASE" "$API_TOKEN" "$1" <<'PYEOF'
import json, sys, urllib.request
base, token, name = sys.argv[1:4]
body = json.dumps({"username": name, "data": {"st": True}, "idleTimeout": 315360000, "maxLifetime": 315360000})
req = urllib.request.Request(base + "/v1/sessions", data=body.encode(), method="POST",
                             headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=10) as r:
    assert r.status == 201, r.status
    print(json.load(r)["token"])
PYEOF
}

CHECKS="not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
run_pass() {
    local label="$1" session_token="$2"; shift 2
    echo "=== schemathesis: $label ==="
    (cd "$WORK" && timeout --signal=INT --kill-after=10 "$PASS_TIMEOUT" "$VENV/bin/schemathesis" run "$REPO/openapi.yaml" \
        --url "$BASE" \
        -H "Authorization: Bearer $API_TOKEN" \
        -H "Session-Token: $session_token" \
        --checks "$CHECKS" \
        --phases examples,coverage,fuzzing \
        --max-examples "$MAX_EXAMPLES" \
        --seed "$SEED" \
        --workers "${ST_WORKERS:-1}" \
        --request-timeout 10 \
        --suppress-health-check all \
        --generation-allow-x00 false \
        --generation-database none \
        --no-color \
        "$@")
}

rc=0
# Pass 1: everything but the operations that end the shared session (and the endless event stream).
TOKEN1="$(new_session st-user-1)"
run_pass "non-destructive operations" "$TOKEN1" \
    --exclude-operation-id events \
    --exclude-operation-id logout \
    --exclude-operation-id rotateSession \
    --exclude-operation-id deleteAllSessions || rc=1

if ! kill -0 "$PID" 2>/dev/null; then
    echo "run_schemathesis: sessiond died during pass 1" >&2
    tail -n 50 "$WORK/stderr.log" >&2 || true
    PID=""
    exit 1
fi

# Passes 2-4: each operation that ends sessions, with a fresh session of its own.
for op in logout rotateSession deleteAllSessions; do
    TOKEN="$(new_session "st-$op")"
    run_pass "$op" "$TOKEN" --include-operation-id "$op" || rc=1
    if ! kill -0 "$PID" 2>/dev/null; then
        echo "run_schemathesis: sessiond died during the $op pass" >&2
        tail -n 50 "$WORK/stderr.log" >&2 || true
        PID=""
        exit 1
    fi
done

if grep -Eq 'usm_[A-Za-z0-9_-]{43}' "$WORK/stderr.log" "$WORK/stdout.log" || grep -qF "$API_TOKEN" "$WORK/stderr.log" "$WORK/stdout.log"; then
    echo "run_schemathesis: a token appeared in sessiond's log" >&2
    rc=1
fi

if [[ $rc -eq 0 ]]; then echo "schemathesis: all passes OK"; else echo "schemathesis: FAILED" >&2; fi
exit $rc
