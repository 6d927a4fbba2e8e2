#!/usr/bin/env bash
# Soak test: start sessiond (SQLite, fresh data directory, API token, 3 s idle timeout), run soak.py
# against it for SECONDS (default 600), stop sessiond with SIGTERM and check that it exits 0.
#
#   Benchmarks/soak/run.sh [SECONDS]
#   SESSIOND_BIN=.build/debug/sessiond Benchmarks/soak/run.sh 60     # the one-minute version
#
# Environment:
#   SESSIOND_BIN      the binary (default .build/release/sessiond; relative paths are taken from the
#                     current directory if the file is there, else from the repository root)
#   SOAK_RATE         journey requests per second (default 400; the keeper adds ~20/s)
#   SOAK_ARGS         more soak.py options (e.g. "--workers 12 --users 5000")
#   SOAK_CSV          where the series goes (default ${TMPDIR:-/tmp}/sessiond-soak-<date>.csv)
#   SOAK_MALLOC       sessiond's glibc malloc settings (GLIBC_TUNABLES):
#                       leakcheck (default): glibc's defaults with the mmap threshold fixed at its
#                         initial 128 KiB, so that large blocks (the event buffers of slow
#                         subscribers, up to 256 KiB each) go back to the system when freed and RSS
#                         follows live memory. With glibc's dynamic threshold, freed buffers stay in
#                         the per-thread arenas and RSS creeps up to a high-water mark that is not a
#                         leak (debug binary, 180 s: +0.8 MB of heap from 36 s on, against -0.1 MB
#                         with leakcheck and a flat series);
#                       glibc: whatever GLIBC_TUNABLES the caller has (glibc's defaults if none);
#                       tuned: scripts/malloc-tunables.sh, as scripts/run.sh starts sessiond (huge
#                         pages: RSS moves in 2 MiB steps, one step is ~5 % of a small sessiond)
#   SOAK_KEEP         1: keep the work directory (data, sessiond log) even when everything passes
#   PYTHON            the Python 3.11 with requests (default python3)
#
# Exit status: 0 when every check passed and sessiond exited 0 after SIGTERM; 1 otherwise; 2 for a
# usage or setup error.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"

DURATION="${1:-600}"
if ! [[ "$DURATION" =~ ^[0-9]+$ ]] || (( DURATION < 20 )); then
    echo "usage: $0 [SECONDS]   (whole seconds, at least 20; default 600)" >&2
    exit 2
fi

BIN="${SESSIOND_BIN:-.build/release/sessiond}"
if [[ "$BIN" != /* ]]; then
    if [[ -x "$PWD/$BIN" ]]; then BIN="$PWD/$BIN"; else BIN="$REPO/$BIN"; fi
fi
if [[ ! -x "$BIN" ]]; then
    echo "soak: no sessiond binary at $BIN (set SESSIOND_BIN)" >&2
    exit 2
fi
PYTHON="${PYTHON:-python3}"
IDLE_TIMEOUT=3
EXPIRED_RETENTION=30
CONNECTION_TIMEOUT=10
RATE="${SOAK_RATE:-400}"
CSV="${SOAK_CSV:-${TMPDIR:-/tmp}/sessiond-soak-$(date +%Y%m%d-%H%M%S).csv}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/sessiond-soak.XXXXXX")"
LOG="$WORK/sessiond.log"
PID=""
STATUS=1

cleanup() {
    if [[ -n "$PID" ]] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$PID" 2>/dev/null || true
    fi
    if [[ "$STATUS" -eq 0 && "${SOAK_KEEP:-0}" != 1 ]]; then
        rm -rf "$WORK"
    else
        echo "soak: work directory kept: $WORK (sessiond log: $LOG)"
    fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# The API token, in a file only we can read.
(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$WORK/api-token")
chmod 600 "$WORK/api-token"

# sessiond's own configuration comes from these flags only, not from the caller's SESSIOND_*.
ENV_ARGS=()
while IFS= read -r name; do
    if [[ "$name" == SESSIOND_* && "$name" != SESSIOND_BIN ]]; then ENV_ARGS+=(-u "$name"); fi
done < <(compgen -e)
case "${SOAK_MALLOC:-leakcheck}" in
    leakcheck) ENV_ARGS+=("GLIBC_TUNABLES=glibc.malloc.mmap_threshold=131072") ;;
    glibc) ;;
    tuned) ENV_ARGS+=("GLIBC_TUNABLES=$(unset GLIBC_TUNABLES; source "$REPO/scripts/malloc-tunables.sh"; echo "$GLIBC_TUNABLES")") ;;
    *) echo "soak: SOAK_MALLOC must be leakcheck, glibc or tuned" >&2; exit 2 ;;
esac

# --connection-timeout 10: stalled connections are closed within the run, even a 60 s one;
# --expired-token-retention 30: the memory of expired tokens reaches its steady size (expiries per
# second x 30 s) in the first half minute instead of growing for an hour, which would hide a leak
# or fake one.
env ${ENV_ARGS[@]+"${ENV_ARGS[@]}"} "$BIN" \
    --host 127.0.0.1 --port 0 \
    --storage sqlite --data-dir "$WORK/data" \
    --api-token-file "$WORK/api-token" \
    --idle-timeout "$IDLE_TIMEOUT" \
    --expired-token-retention "$EXPIRED_RETENTION" \
    --connection-timeout "$CONNECTION_TIMEOUT" \
    --log-level info \
    </dev/null >"$WORK/sessiond.stdout" 2>"$LOG" &
PID=$!

# Port 0: sessiond picks a free port and names it in its "listening on" line.
PORT=""
for _ in $(seq 200); do
    if ! kill -0 "$PID" 2>/dev/null; then
        echo "soak: sessiond exited before listening; log:" >&2
        tail -n 30 "$LOG" >&2
        exit 1
    fi
    PORT="$(grep -o 'sessiond listening on http://127\.0\.0\.1:[0-9]*' "$LOG" 2>/dev/null | head -n 1 | sed 's/.*://' || true)"
    [[ -n "$PORT" ]] && break
    sleep 0.1
done
if [[ -z "$PORT" ]]; then
    echo "soak: no 'sessiond listening on' line after 20 s; log:" >&2
    tail -n 30 "$LOG" >&2
    exit 1
fi
echo "soak: sessiond $BIN (pid $PID) on 127.0.0.1:$PORT, data in $WORK/data, ${DURATION} s, malloc ${SOAK_MALLOC:-leakcheck}"

SOAK_STATUS=0
# shellcheck disable=SC2086
"$PYTHON" "$HERE/soak.py" \
    --url "http://127.0.0.1:$PORT" --api-token-file "$WORK/api-token" --pid "$PID" \
    --duration "$DURATION" --csv "$CSV" --rate "$RATE" \
    --idle-timeout "$IDLE_TIMEOUT" --expired-retention "$EXPIRED_RETENTION" \
    --connection-timeout "$CONNECTION_TIMEOUT" \
    ${SOAK_ARGS:-} || SOAK_STATUS=$?

# SIGTERM: sessiond must finish its in-flight work and exit 0 (grace 10 s by default).
EXIT_STATUS=0
if kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID"
    for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$PID" 2>/dev/null; then
        echo "FAIL sessiond still running 20 s after SIGTERM: killed"
        kill -KILL "$PID" 2>/dev/null || true
    fi
    wait "$PID" || EXIT_STATUS=$?
    if [[ "$EXIT_STATUS" -eq 0 ]]; then
        echo "PASS sessiond exited 0 after SIGTERM"
    else
        echo "FAIL sessiond exited $EXIT_STATUS after SIGTERM"
    fi
else
    wait "$PID" || EXIT_STATUS=$?
    echo "FAIL sessiond was no longer running at the end (exit status $EXIT_STATUS)"
    if [[ "$EXIT_STATUS" -eq 0 ]]; then EXIT_STATUS=1; fi
fi
PID=""

if grep -qE '^[^ ]+ (error|critical) ' "$LOG"; then
    echo "soak: sessiond logged errors:"
    grep -E '^[^ ]+ (error|critical) ' "$LOG" | head -n 20
fi
echo "soak: series in $CSV"
if [[ "$SOAK_STATUS" -eq 0 && "$EXIT_STATUS" -eq 0 ]]; then
    STATUS=0
    echo "soak: PASS"
else
    echo "soak: FAIL (soak.py exit $SOAK_STATUS, sessiond exit $EXIT_STATUS)"
fi
exit "$STATUS"
