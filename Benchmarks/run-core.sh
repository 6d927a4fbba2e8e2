#!/usr/bin/env bash
# SessionCore benchmark: builds release and runs the harness twice, side by side: with glibc's
# default allocator settings and with the malloc settings of scripts/malloc-tunables.sh (transparent
# huge pages), which is how scripts/run.sh starts sessiond.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --package-path Benchmarks --product SessionBenchmarks
tuned=$(unset GLIBC_TUNABLES; source scripts/malloc-tunables.sh; echo "$GLIBC_TUNABLES")
for tunables in "" "$tuned"; do
    echo "== GLIBC_TUNABLES=${tunables:-<unset>}"
    GLIBC_TUNABLES="$tunables" Benchmarks/.build/release/SessionBenchmarks --runs "${RUNS:-5}" "$@" | sed -n '/^| benchmark/,$p'
done
