#!/usr/bin/env bash
# Runs the Node client's tests (node --test) from the repository root, against a real sessiond that
# the tests start: $SESSIOND_BIN, else .build/debug/sessiond.
set -euo pipefail
cd "$(dirname "$0")/../../.."
bin=${SESSIOND_BIN:-.build/debug/sessiond}
if [ ! -x "$bin" ]; then
    echo "clients/node/test/run.sh: no sessiond at $bin (build it, or set SESSIOND_BIN)" >&2
    exit 1
fi
if ! command -v node >/dev/null \
    || ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
    echo "clients/node/test/run.sh: Node >= 20.19 is required (found: $(node --version 2>/dev/null || echo none))" >&2
    exit 1
fi
exec node --test clients/node/test/
