#!/usr/bin/env bash
# Runs each libFuzzer harness for SECONDS (one job each, one after another)
# and prints its executions; fails if one finds a crash, a leak or a hang.
#   tests/fuzz/run.sh smoke BUILD_FUZZ_DIR SECONDS   fixed seed, fresh corpus
#   tests/fuzz/run.sh long  BUILD_FUZZ_DIR SECONDS   corpus kept in DIR/corpus
# Regression inputs (tests/fuzz/regressions/NAME/, and those make-seeds
# writes to DIR/seeds/regress-NAME/) run first, every time.
set -euo pipefail
mode=$1 dir=$2 seconds=$3
here=$(cd "$(dirname "$0")" && pwd)
status=0
for name in restore incoming standby ctl http; do
    bin=$dir/fuzz_$name
    seeds=$dir/seeds/$name
    if [[ $mode == smoke ]]; then
        corpus=$(mktemp -d "${TMPDIR:-/tmp}/ferry-fuzz-$name.XXXXXX")
        seed_opt=-seed=1
    else
        corpus=$dir/corpus/$name
        mkdir -p "$corpus"
        seed_opt=
    fi
    mkdir -p "$dir/crashes"
    log=$dir/fuzz_$name.log
    regress=()
    for r in "$here/regressions/$name" "$dir/seeds/regress-$name"; do
        [[ -d $r ]] && regress+=("$r"/*)
    done
    if ((${#regress[@]})); then
        if ! "$bin" -close_fd_mask=2 "${regress[@]}" >"$log.regress" 2>&1; then
            echo "fuzz/$name: a regression input fails again (see $log.regress)"
            status=1
        fi
    fi
    rc=0
    "$bin" $seed_opt -max_total_time="$seconds" -max_len=65536 -timeout=20 -rss_limit_mb=2048 \
        -close_fd_mask=2 -print_final_stats=1 -artifact_prefix="$dir/crashes/$name-" \
        "$corpus" "$seeds" >"$log" 2>&1 || rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
    if ((rc)); then
        echo "fuzz/$name: FAILED after ${runs:-?} executions (exit $rc); see $log and $dir/crashes/"
        grep -m3 -E 'ERROR|runtime error|SUMMARY' "$log" || true
        status=1
    else
        echo "fuzz/$name: ${runs:-?} executions in $seconds s (${rate:-?} exec/s, $cov)"
    fi
    [[ $mode == smoke ]] && rm -rf "$corpus"
done
exit $status
