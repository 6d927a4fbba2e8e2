#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer + AddressSanitizer) of the parsers and checks that see untrusted
# bytes: the fuzz targets of the separate package Fuzz/ (see Fuzz/README.md).
#
#   scripts/fuzz.sh NAME SECONDS [libFuzzer flags...]   fuzz one target for SECONDS
#   scripts/fuzz.sh all SECONDS [libFuzzer flags...]    every target in turn
#
# Builds the fuzz package first (incremental; the first build takes a few minutes) into .build/fuzz,
# never into the main package's build. Each run starts from a scratch copy of Fuzz/Corpus/NAME/ (new
# inputs stay in a temporary directory, not in the repository), prints the final coverage line, and
# exits non-zero when libFuzzer finds a crash, an invariant violation, a timeout or an out-of-memory:
# the input is saved under .build/fuzz/crashes/NAME/ and printed in hex with the stack.
#
# Environment:
#   FUZZ_KEEP_GOING=1   keep fuzzing after a crash (libFuzzer's fork mode), to collect every distinct
#                       crash of the run in .build/fuzz/crashes/NAME/ (still exits non-zero if any)
#   FUZZ_SKIP_BUILD=1   use the binaries already built
#   FUZZ_NICE=N         niceness of the build and the fuzzer (default 19: the machine may be shared)
#   ASAN_OPTIONS        default malloc_context_size=0 (no allocation stacks: about 1.5x more runs per
#                       second); reproduce a crash with the default to get them (command printed)
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(FuzzRequestHead FuzzJSONBody FuzzRoutes FuzzTokenShape FuzzLastEventID FuzzReplay)
build_path=.build/fuzz
crash_root=$build_path/crashes
nice_level=${FUZZ_NICE:-19}

usage() {
    echo "usage: scripts/fuzz.sh NAME|all SECONDS [libFuzzer flags...]" >&2
    echo "NAME is one of: ${targets[*]}" >&2
    exit 2
}

[ $# -ge 2 ] || usage
name=$1
seconds=$2
shift 2
[[ $seconds =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: SECONDS must be a positive integer, not '$seconds'" >&2; usage; }
if [ "$name" = all ]; then
    selected=("${targets[@]}")
else
    selected=()
    for target in "${targets[@]}"; do [ "$target" = "$name" ] && selected=("$target"); done
    [ ${#selected[@]} -eq 1 ] || { echo "fuzz.sh: unknown fuzz target '$name'" >&2; usage; }
fi

if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
    export PATH=/opt/swift/usr/bin:$PATH
fi

# -sanitize=fuzzer,address instruments every Swift module (the main package's and its dependencies')
# for coverage and AddressSanitizer and links libFuzzer; -enable-testing lets the targets use
# `@testable import`. C targets (CTokenDigest, CTLSIdentity, swift-crypto's BoringSSL) are compiled as
# usual and linked with the sanitizer runtime: they are not instrumented, but ASan's interceptors still
# check their memcpy/memset/strlen calls. No -parse-as-library: each target's main.swift starts libFuzzer
# (SwiftPM names a Linux executable's entry point after its target and links `main` to it).
build_flags=(-c debug -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing)
if [ "${FUZZ_SKIP_BUILD:-0}" != 1 ]; then
    echo "== building the fuzz targets ($build_path)"
    start=$SECONDS
    # (ld.gold warns about every ASan symbol it cannot export: noise.)
    nice -n "$nice_level" swift build --package-path Fuzz --build-path "$build_path" "${build_flags[@]}" 2>&1 \
        | { grep -v "Cannot export local symbol" || true; } \
        || { echo "fuzz.sh: the build failed" >&2; exit 1; }
    echo "== built in $((SECONDS - start)) s"
fi
bin_dir=$(swift build --package-path Fuzz --build-path "$build_path" "${build_flags[@]}" --show-bin-path)

# The Swift runtime's own crash backtracer is slow and can outlive the process; libFuzzer prints the
# stack (the targets also re-exec themselves with this set).
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS=${ASAN_OPTIONS:-malloc_context_size=0}

# Scratch space: the corpus copies and FuzzReplay's database files (FUZZ_SCRATCH), in memory when
# /dev/shm is there.
scratch_parent=${TMPDIR:-/tmp}
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then scratch_parent=/dev/shm; fi
work_root=$(mktemp -d "$scratch_parent/usm-fuzz.XXXXXX")
trap 'rm -rf "$work_root"' EXIT

# One line per distinct problem among `artifacts` (count, where, the smallest input): each input is run
# once more and named by its invariant (file:line) or its runtime failure and first frame in Sources/.
classify() {
    local binary=$1
    shift
    local artifact output signature
    for artifact in "$@"; do
        output=$(FUZZ_SCRATCH=$work_root timeout 60 "$binary" -detect_leaks=0 "$artifact" 2>&1 || true)
        signature=$(grep -m1 -oE '[A-Za-z]+\.swift:[0-9]+: Fatal error: fuzz invariant violated: [^0-9:"([]{0,70}' <<<"$output" || true)
        if [ -z "$signature" ]; then
            signature=$(grep -m1 -oE 'Swift runtime failure: [a-z ]+[a-z]' <<<"$output" || true)
            [ -n "$signature" ] || signature=$(grep -m1 -oE 'ERROR: AddressSanitizer: [a-z-]+|Fatal error: [^:]{0,70}' <<<"$output" || true)
            [ -n "$signature" ] || signature=$(grep -m1 -oE 'deadly signal|timeout|out-of-memory' <<<"$output" || echo "does not reproduce alone")
            signature="$signature at $(grep -m1 -oE '(Sources|Fuzz/Sources)/[^ ]+:[0-9]+' <<<"$(grep -E '/Sources/' <<<"$output" | grep -v FuzzSupport)" || echo '?')"
        fi
        printf '%s\t%s\t%s\n' "$signature" "$(wc -c <"$artifact")" "$artifact"
    done | sort -t $'\t' -k1,1 -k2,2n | awk -F '\t' '
        $1 != last { if (last != "") print "   " count "x  " last "\n       smallest: " first; last = $1; count = 0; first = $3 }
        { count++ }
        END { if (last != "") print "   " count "x  " last "\n       smallest: " first }'
}

# Runs one target; returns 1 when it found something.
run_target() {
    local target=$1
    shift
    local binary=$bin_dir/$target
    local work=$work_root/$target
    local crashes=$PWD/$crash_root/$target
    [ -x "$binary" ] || { echo "fuzz.sh: $binary is missing (build first)" >&2; return 1; }
    mkdir -p "$work/corpus" "$crashes"
    cp Fuzz/Corpus/"$target"/* "$work/corpus/" 2>/dev/null || true
    local before
    before=$(ls "$crashes" | sort)
    local mode=()
    if [ "${FUZZ_KEEP_GOING:-0}" = 1 ]; then
        mode=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
    fi
    echo "== $target: ${seconds} s from $(ls "$work/corpus" | wc -l) seed inputs"
    local status=0
    # Leak detection is off: Swift's runtime caches and the storage's threads make it slow and noisy,
    # and a leak is not what these targets look for. -timeout: an input that takes 10 s is a hang.
    (cd "$work" && FUZZ_SCRATCH=$work nice -n "$nice_level" "$binary" "$work/corpus" -max_total_time="$seconds" -timeout=10 \
        -detect_leaks=0 -print_final_stats=1 -artifact_prefix="$crashes/" "${mode[@]}" "$@") \
        >"$work/log" 2>&1 || status=$?
    # The last coverage line: "#N DONE cov: C ft: F corp: ... exec/s: E" (fork mode: "#N: cov: ...").
    local final
    final=$(grep -E '^#[0-9]+.*cov: ' "$work/log" | tail -n 1 || true)
    echo "   ${final:-no coverage line (see below)}"
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$work/log" | sed 's/^/   /' || true
    local found
    found=$(comm -13 <(echo "$before") <(ls "$crashes" | sort) | grep -E '^(crash|timeout|oom|leak|slow-unit)-' || true)
    if [ "$status" -eq 0 ] && [ -z "$found" ]; then
        return 0
    fi
    echo "!! $target: libFuzzer stopped with status $status"
    local count
    count=$(wc -w <<<"$found")
    if [ "$count" -gt 1 ]; then
        echo "   $count inputs saved under $crash_root/$target/; distinct problems (first 200 inputs, smallest first):"
        # shellcheck disable=SC2046
        classify "$binary" $(cd "$crashes" && ls -S -r $found | head -n 200 | sed "s|^|$crashes/|")
        echo "   reproduce one: ASAN_OPTIONS= $binary INPUT"
        return 1
    fi
    # The report: from the first error line to the end of the stack, without libFuzzer's own frames.
    grep -nE 'Fatal error|runtime failure|ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)|SUMMARY' "$work/log" \
        | head -n 5 | sed 's/^/   /' || true
    awk '/ERROR: (AddressSanitizer|libFuzzer)/ {show=1} show && /^ *#[0-9]+ / && !/(fuzzer::|libc|_start|__sanitizer)/ {print "   " $0}
         /^SUMMARY/ {show=0}' "$work/log" | head -n 40 || true
    local artifact
    for artifact in $found; do
        echo "   input saved: $crash_root/$target/$artifact ($(wc -c <"$crashes/$artifact") bytes)"
        echo "   hex: $(head -c 512 "$crashes/$artifact" | od -An -v -tx1 | tr -d ' \n')"
        echo "   reproduce: ASAN_OPTIONS= $binary $crashes/$artifact"
    done
    if [ -z "$found" ]; then
        echo "   (no input saved; the log's last lines:)"
        tail -n 20 "$work/log" | sed 's/^/   /'
    fi
    return 1
}

failed=()
for target in "${selected[@]}"; do
    run_target "$target" "$@" || failed+=("$target")
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: found problems in: ${failed[*]} (inputs under $crash_root/)"
    exit 1
fi
echo "fuzz.sh: no crash in ${selected[*]}"
