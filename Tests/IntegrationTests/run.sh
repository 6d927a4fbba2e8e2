#!/usr/bin/env bash
# Runs the black-box integration suite (pytest) and then the schemathesis conformance run.
# Needs a built sessiond (SESSIOND_BIN, default .build/debug/sessiond). Exits non-zero on any failure.
set -uo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
cd "$REPO"

ensure() {  # ensure <python module> <pip package>
    python3 -c "import $1" 2>/dev/null && return 0
    python3 -m pip install --quiet --disable-pip-version-check "$2" \
        || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "$2"
}
ensure requests requests || exit 1
ensure pytest pytest || exit 1
ensure openapi_schema_validator openapi-schema-validator || exit 1
ensure yaml pyyaml || exit 1

python3 -m pytest -q -p no:cacheprovider Tests/IntegrationTests "$@"
rc_pytest=$?
bash "$HERE/run_schemathesis.sh"
rc_st=$?

echo "integration: pytest exit $rc_pytest, schemathesis exit $rc_st"
if [[ $rc_pytest -ne 0 || $rc_st -ne 0 ]]; then
    exit 1
fi
