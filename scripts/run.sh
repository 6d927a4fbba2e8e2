#!/usr/bin/env bash
# Installs what is missing, builds and starts sessiond.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
swift build -c release --product sessiond
source scripts/malloc-tunables.sh
exec .build/release/sessiond "$@"
