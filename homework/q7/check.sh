#!/bin/sh
# check.sh - the grader of question 7: a report of measured figures.
#
#     sh q7/check.sh REPORT.md
#
# Checks, printing one PASS or FAIL line each:
#   1. every figure `make -C homework measure` fills in is a number;
#   2. the figures are plausible, alone and together: times and rates in
#      sane ranges, pipelining faster than stop and wait, stop and wait
#      near one message per round trip (within 10x), the 1 ms delay visible;
#   3. they agree with this machine: rperf runs again here, and three of
#      them must be within a factor of 20 of the report's;
#   4. the student's calculations follow from the figures (within 15%);
#   5. every question has an answer of at least 25 words of the student's
#      own (counted against the grader's copy of the template).
# HW_RPERF is rperf (the Makefile sets it).
set -u
report=${1:?usage: check.sh REPORT.md}
hw=$(cd "$(dirname "$0")/.." && pwd)
template=$hw/q7/REPORT.md
rperf=${HW_RPERF:-$hw/../build/tools/rperf}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/homework-q7.XXXXXX") || exit 2
server=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$tmp"' EXIT
trap 'exit 2' INT TERM

MEASURED="udp_rtt_us rmsg_rtt_us rmsg_rtt_p99_us saw_1k_MBps async_1k_MBps
saw_1m_MBps async_1m_MBps udp_MBps tcp_MBps loss_async_1m_MBps
loss_retransmissions delay_rtt_us delay_saw_1k_MBps delay_async_1k_MBps"
COMPUTED="predicted_saw_1k_MBps predicted_delay_saw_1k_MBps bdp_bytes
loss_kept"

run=0
passed=0
pass() {
    run=$((run + 1))
    passed=$((passed + 1))
    echo "  PASS  $1${2:+ ($2)}"
}
fail() {
    run=$((run + 1))
    echo "  FAIL  $1: $2"
}

# The value cell of every `key` row, as "key number" (or "key ?" when the
# cell does not start with a number).
awk -F'|' '/^\| `[A-Za-z0-9_]*` \|/ {
    key = $2; gsub(/[ `]/, "", key)
    val = $(NF - 1); gsub(/^[ \t]+/, "", val)
    if (match(val, /^[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?/))
        print key, substr(val, 1, RLENGTH)
    else
        print key, "?"
}' "$report" > "$tmp/values"

# get KEY: the number of row KEY, empty when missing or not a number.
get() {
    awk -v k="$1" '$1 == k && $2 != "?" { print $2; exit }' "$tmp/values"
}

# missing KEYS...: the keys among them without a number.
missing() {
    for k in "$@"; do [ -n "$(get "$k")" ] || printf ' %s' "$k"; done
}

# Every figure as an awk variable ("-v key=value", 0 when missing).
vars=
for k in $MEASURED $COMPUTED; do
    v=$(get "$k")
    vars="$vars -v $k=${v:-0}"
done

# judge "CONDITION" "MESSAGE": prints MESSAGE when CONDITION, an awk
# expression over the figures, is false.
judge() {
    # shellcheck disable=SC2086
    awk $vars "BEGIN { exit !($1) }" || echo "$2"
}

# calc EXPRESSION: its value over the figures.
calc() {
    # shellcheck disable=SC2086
    awk $vars "BEGIN { printf \"%.4g\", $1 }"
}

echo "q7: measurements"

# 1. ------------------------------------------------------------------------
gaps=$(missing $MEASURED)
if [ -z "$gaps" ]; then
    pass "every measured figure is filled in"
    figures=1
else
    fail "every measured figure is filled in" \
        "no number for$gaps (run make -C homework measure)"
    figures=0
fi

# 2. ------------------------------------------------------------------------
if [ "$figures" = 1 ]; then
    why=$( {
        for k in udp_rtt_us rmsg_rtt_us delay_rtt_us; do
            judge "$k >= 1 && $k <= 200000" \
                "$k is $(get $k) µs: a round trip between 1 µs and 0.2 s, please"
        done
        for k in saw_1k_MBps async_1k_MBps saw_1m_MBps async_1m_MBps udp_MBps \
                tcp_MBps loss_async_1m_MBps delay_saw_1k_MBps \
                delay_async_1k_MBps; do
            judge "$k >= 0.01 && $k <= 100000" \
                "$k is $(get $k) MB/s: outside 0.01 to 100000"
        done
        judge "rmsg_rtt_us >= 0.3 * udp_rtt_us" \
            "rmsg's round trip is less than a third of raw UDP's"
        judge "rmsg_rtt_p99_us >= rmsg_rtt_us" \
            "the 99th percentile is below the median"
        judge "async_1k_MBps >= 1.5 * saw_1k_MBps" \
            "pipelined 1K messages are not faster than stop and wait"
        judge "saw_1k_MBps >= 0.1 * 1024 / rmsg_rtt_us && saw_1k_MBps <= 5 * 1024 / rmsg_rtt_us" \
            "stop and wait is nowhere near one 1K message per round trip"
        judge "delay_rtt_us >= 1000" \
            "the round trip with 1 ms of delay is under 1 ms"
        judge "delay_saw_1k_MBps <= 2 * 1024 / delay_rtt_us" \
            "with 1 ms of delay, stop and wait beats one message per round trip"
        judge "delay_async_1k_MBps >= 2 * delay_saw_1k_MBps" \
            "with 1 ms of delay, pipelining is not faster than stop and wait"
        judge "loss_async_1m_MBps <= 1.5 * async_1m_MBps" \
            "rmsg is faster with 5% loss than without"
        judge "loss_retransmissions >= 1" \
            "no retransmissions although 5% of datagrams were dropped"
    } | head -1)
    if [ -z "$why" ]; then
        pass "the figures are plausible"
    else
        fail "the figures are plausible" "$why"
    fi
else
    fail "the figures are plausible" "the figures are missing"
fi

# 3. ------------------------------------------------------------------------
fresh() { # KEY FIELD RPERF-ARGS...: measures KEY again, here and now
    key=$1 field=$2
    shift 2
    "$rperf" -c 127.0.0.1 -p "$port" --no-baseline --json "$@" \
        > "$tmp/fresh.json" 2>/dev/null || return 1
    sed -n "s/^ *\"$field\": *\([-0-9.e+]*\),*$/\1/p" "$tmp/fresh.json"
}
if [ "$figures" = 1 ] && [ -x "$rperf" ]; then
    unset UDP_FAULTS
    "$rperf" -s -p 0 > "$tmp/server.out" 2>&1 &
    server=$!
    port=
    for _ in $(seq 100); do
        port=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$tmp/server.out")
        [ -n "$port" ] && break
        sleep 0.05
    done
    why=
    now=
    for spec in "udp_rtt_us p50_us 1 -T udp --lat -N 1000" \
                "rmsg_rtt_us p50_us 1 -T rmsg --lat -N 1000" \
                "async_1m_MBps rate_bytes_per_s 1e6 -T rmsg-async -l 1M -n 128M -t 1"; do
        # shellcheck disable=SC2086
        set -- $spec
        key=$1 field=$2 scale=$3
        shift 3
        raw=$(fresh "$key" "$field" "$@")
        if [ -z "$raw" ] || [ -z "$port" ]; then
            why="rperf could not measure $key here"
            break
        fi
        here=$(awk -v r="$raw" -v s="$scale" 'BEGIN { printf "%.3g", r / s }')
        now="$now${now:+, }$key $here"
        theirs=$(get "$key")
        if ! awk -v a="$theirs" -v b="$here" \
                'BEGIN { exit !(a <= 20 * b && b <= 20 * a) }'; then
            why="$key is $theirs in the report but $here here: more than 20 times apart"
            break
        fi
    done
    if [ -z "$why" ]; then
        pass "the figures agree with this machine" "here: $now"
    else
        fail "the figures agree with this machine" "$why"
    fi
else
    fail "the figures agree with this machine" "the figures are missing"
fi

# 4. ------------------------------------------------------------------------
gaps=$(missing $COMPUTED)
if [ -n "$gaps" ]; then
    fail "the calculations follow from the figures" "no number for$gaps"
elif [ "$figures" = 0 ]; then
    fail "the calculations follow from the figures" "the figures are missing"
else
    why=$( {
        near() { # KEY EXPRESSION WORDS
            judge "$1 >= 0.85 * ($2) && $1 <= 1.15 * ($2)" \
                "$1 is $(get "$1"), but $3 gives $(calc "$2")"
        }
        near predicted_saw_1k_MBps "1024 / rmsg_rtt_us" "1024 bytes / rmsg_rtt_us"
        near predicted_delay_saw_1k_MBps "1024 / delay_rtt_us" \
            "1024 bytes / delay_rtt_us"
        near bdp_bytes "async_1m_MBps * delay_rtt_us" \
            "async_1m_MBps x delay_rtt_us"
        near loss_kept "loss_async_1m_MBps / async_1m_MBps" \
            "loss_async_1m_MBps / async_1m_MBps"
    } | head -1)
    if [ -z "$why" ]; then
        pass "the calculations follow from the figures"
    else
        fail "the calculations follow from the figures" "$why"
    fi
fi

# 5. ------------------------------------------------------------------------
# Words per "### N." section, in the report and in the template.
words() {
    awk '/^### [0-9]+\./ { s = $2 } /^## / && !/^###/ { s = "" }
         s != "" && !/^###/ { n[s] += NF }
         END { for (k in n) print k, n[k] }' "$1" | sort
}
words "$template" > "$tmp/template.words"
words "$report" > "$tmp/report.words"
why=
if grep -q 'TODO(student)' "$report"; then
    why="TODO(student) is still in the report"
fi
while read -r sec count; do
    [ -n "$why" ] && break
    got=$(awk -v s="$sec" '$1 == s { print $2 }' "$tmp/report.words")
    # The template has the question and one word of TODO(student).
    own=$(( ${got:-0} - count + 1 ))
    if [ "$own" -lt 25 ]; then
        why="the answer to question $sec has $own words of your own, not 25"
    fi
done < "$tmp/template.words"
if [ -z "$why" ]; then
    pass "every question is answered"
else
    fail "every question is answered" "$why"
fi

ok=FAIL
[ "$passed" -eq "$run" ] && ok=
echo "q7: measurements: $passed of $run checks passed${ok:+: $ok}"
[ "$passed" -eq "$run" ]
