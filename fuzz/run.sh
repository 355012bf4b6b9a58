#!/bin/sh
# Runs one fuzz target: replays its regression inputs and its committed
# seed corpus, then fuzzes it for SECONDS (0: replay only).
#
#   sh fuzz/run.sh DIR TARGET SECONDS [libFuzzer flags...]
#
# DIR is the build's fuzz directory (binaries DIR/fuzz_TARGET).  New inputs
# go to DIR/corpus/TARGET (the committed fuzz/corpus/TARGET is only read),
# crashes to DIR/artifacts/TARGET/.  Exits non-zero when a regression input
# or the fuzzer fails; the crash's reproducer path is printed.
set -u
dir=$1 target=$2 seconds=$3
shift 3
bin=$dir/fuzz_$target
seeds=fuzz/corpus/$target
regress=fuzz/regressions/$target
work=$dir/corpus/$target
art=$dir/artifacts/$target/
mkdir -p "$work" "$art"
opts=""
[ -f "fuzz/$target.options" ] && opts=$(cat "fuzz/$target.options")

replay() { # runs every file of a directory once; reports each failure
    [ -d "$1" ] || return 0
    n=0 bad=0
    for f in $(find "$1" -type f ! -name '.*' ! -name '*.md' | sort); do
        n=$((n + 1))
        # shellcheck disable=SC2086
        if ! "$bin" $opts "$f" >"$dir/replay-$target.log" 2>&1; then
            bad=$((bad + 1))
            echo "fuzz: $target: $f FAILS:" >&2
            grep -E '^ +#[0-9]+ .* in [a-zA-Z_0-9]+ [^ ]*(fuzz|rmsg|rpc|udp|lib)/?[a-z_0-9]*\.c' \
                "$dir/replay-$target.log" | grep -v 'fuzzer::' | head -n 8 >&2
            grep -E '^SUMMARY' "$dir/replay-$target.log" >&2
        fi
    done
    echo "fuzz: $target: $n inputs of $1 replayed, $bad failed"
    [ "$bad" -eq 0 ]
}
replay "$regress"; r1=$?
replay "$seeds"; r2=$?
[ $r1 -eq 0 ] && [ $r2 -eq 0 ] || exit 1
[ "$seconds" -gt 0 ] || exit 0

echo "fuzz: $target: fuzzing for $seconds s"
log=$dir/fuzz-$target.log
# shellcheck disable=SC2086
"$bin" $opts -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="$art" "$@" "$work" "$seeds" >"$log" 2>&1
rc=$?
grep -E "^#[0-9]+[[:space:]]+DONE" "$log" | tail -n 1
grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$log" | awk '!seen[$0]++'
if [ $rc -ne 0 ]; then
    tail -n 60 "$log" >&2
    for f in "$art"*; do
        [ -f "$f" ] && echo "fuzz: $target: reproducer $f" >&2
    done
    echo "fuzz: $target: FAILED (log: $log); minimise with" >&2
    echo "    $bin -minimize_crash=1 -runs=10000 REPRODUCER" >&2
    exit 1
fi
