# Sourced by scripts/run.sh and the benchmarks: the glibc malloc settings sessiond runs with.
#
# Transparent huge pages for the session table: a lookup in a table of a million sessions misses the
# caches and the TLB, and on a VM every TLB miss is a two-level page walk. glibc's `hugetlb=1` asks
# for huge pages only on memory the main arena takes with sbrk, so every thread allocates from that
# arena (`arena_max=1`) and blocks up to 4 MiB (the session table's 512 KiB chunks) come from it
# rather than from mmap. Per-thread caches serve most small blocks without the arena lock, but
# `calloc` (libmicrohttpd's response objects) bypasses them, so under load the HTTP workers do
# contend for that lock; glibc's defaults avoid it but lose the huge pages, and measured no faster.
# Measured: ~100 MB of a 125 MB sessiond in huge pages instead of none, and GET /v1/session 4-8 %
# faster at 500,000 sessions (Benchmarks/RESULTS.md). Set GLIBC_TUNABLES yourself to override.
export GLIBC_TUNABLES="${GLIBC_TUNABLES:-glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1:glibc.malloc.mmap_threshold=4194304}"
