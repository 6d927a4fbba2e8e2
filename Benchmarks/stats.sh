# Sourced by the benchmark scripts: medians and ratios of measured rates.

# median V... → the median of the values
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# ratio A B → A/B with two decimals
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }

# paired MEASURED_ARRAY REFERENCE_ARRAY (array names, one value per round) → the median of the
# per-round ratios, then the ratios. The servers of a round ran back to back, so a per-round ratio
# cancels most of the shared machine's drift, which a ratio of medians does not.
paired() {
    local -n measured=$1 reference=$2
    local ratios=() i
    for i in "${!measured[@]}"; do ratios+=("$(awk -v a="${measured[$i]}" -v b="${reference[$i]}" 'BEGIN {print a/b}')"); done
    echo "$(median "${ratios[@]}" | awk '{printf "%.2f", $1}') (rounds: $(printf '%.2f ' "${ratios[@]}"))"
}

# cpu_ticks PID... → the user + system CPU time of the processes so far, in clock ticks (summed)
cpu_ticks() { local total=0 p; for p in "$@"; do total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$total"; }

# per_request TICKS REQUESTS → microseconds of CPU per request, two decimals
per_request() { awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}'; }
