#!/usr/bin/env bash
# Runs every test: installs what is missing, then the Swift unit tests.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
swift build --build-tests
swift test --skip-build
