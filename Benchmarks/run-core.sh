#!/usr/bin/env bash
# SessionCore benchmark: builds release and runs the harness twice, side by side: with glibc's
# default allocator settings and with transparent huge pages for malloc (GLIBC_TUNABLES), which is
# how scripts/run.sh starts sessiond.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product SessionBenchmarks
for tunables in "" "glibc.malloc.hugetlb=1"; do
    echo "== GLIBC_TUNABLES=${tunables:-<unset>}"
    GLIBC_TUNABLES="$tunables" .build/release/SessionBenchmarks --runs "${RUNS:-5}" "$@" | sed -n '/^| benchmark/,$p'
done
