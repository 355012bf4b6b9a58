#!/bin/sh
# measure.sh - question 7: runs rperf and fills in the figures of a report.
#
#     sh q7/measure.sh [DIR]        (make -C homework measure [DIR=...])
#
# Starts an rperf server on a free port of this machine, runs the client
# once per figure over loopback (some runs with UDP_FAULTS injecting delay
# or loss on the client's datagrams), and writes each figure into the last
# column of its row in DIR/REPORT.md (default q7/REPORT.md), a row being
#
#     | `key` | what was measured | value |
#
# Only those cells change, so it can run again at any time (your answers
# stay).  The raw rperf output is kept in DIR/figures.json.  HW_RPERF says
# where rperf is (the Makefile sets it).
set -u
hw=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-q7}
case $dir in /*) ;; *) dir=$hw/$dir ;; esac
report=$dir/REPORT.md
rperf=${HW_RPERF:-$hw/../build/tools/rperf}
if [ ! -f "$report" ]; then
    echo "measure: $report does not exist" >&2
    exit 2
fi
if [ ! -x "$rperf" ]; then
    echo "measure: $rperf is missing: run make -C homework" >&2
    exit 2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/homework-measure.XXXXXX") || exit 2
server=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 2' INT TERM

# The server, on a free port; it serves one client after another.
unset UDP_FAULTS
"$rperf" -s -p 0 > "$tmp/server.out" 2>&1 &
server=$!
port=
for _ in $(seq 100); do
    port=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$tmp/server.out")
    [ -n "$port" ] && break
    sleep 0.05
done
if [ -z "$port" ]; then
    echo "measure: the rperf server did not start:" >&2
    cat "$tmp/server.out" >&2
    exit 1
fi

: > "$tmp/figures"
: > "$tmp/all.json"

# run KEY FIELD SCALE [ENV=...] -- RPERF-ARGS: one rperf run; the JSON
# field FIELD, divided by SCALE, becomes figure KEY.
run() {
    key=$1 field=$2 scale=$3
    shift 3
    envs=
    while [ "$1" != -- ]; do envs="$envs $1"; shift; done
    shift
    printf '  %-22s' "$key"
    # shellcheck disable=SC2086
    if ! env $envs "$rperf" -c 127.0.0.1 -p "$port" --no-baseline --json \
            "$@" > "$tmp/run.json" 2> "$tmp/run.err"; then
        echo "rperf failed: $(head -3 "$tmp/run.err")"
        return
    fi
    cat "$tmp/run.json" >> "$tmp/all.json"
    raw=$(sed -n "s/^ *\"$field\": *\([-0-9.e+]*\),*$/\1/p" "$tmp/run.json")
    if [ -z "$raw" ]; then
        echo "no $field in rperf's output"
        return
    fi
    value=$(awk -v v="$raw" -v s="$scale" 'BEGIN {
        x = v / s; printf(x >= 100 ? "%.0f" : x >= 10 ? "%.1f" : "%.3g", x) }')
    echo "$value"
    echo "$key $value" >> "$tmp/figures"
}

echo "measuring with $rperf on 127.0.0.1:$port (about 20 s)"
run udp_rtt_us p50_us 1 -- -T udp --lat -N 2000
run rmsg_rtt_us p50_us 1 -- -T rmsg --lat -N 2000
run rmsg_rtt_p99_us p99_us 1 -- -T rmsg --lat -N 2000
run saw_1k_MBps rate_bytes_per_s 1e6 -- -T rmsg -l 1K -n 8M -t 2
run async_1k_MBps rate_bytes_per_s 1e6 -- -T rmsg-async -l 1K -n 64M -t 2
run saw_1m_MBps rate_bytes_per_s 1e6 -- -T rmsg -l 1M -n 256M -t 2
run async_1m_MBps rate_bytes_per_s 1e6 -- -T rmsg-async -l 1M -n 256M -t 2
run udp_MBps rate_bytes_per_s 1e6 -- -T udp -n 256M -t 2
run tcp_MBps rate_bytes_per_s 1e6 -- -T tcp -n 1G -t 2
run loss_async_1m_MBps rate_bytes_per_s 1e6 UDP_FAULTS=drop=0.05 -- \
    -T rmsg-async -l 1M -n 128M -t 2
run loss_retransmissions retransmissions 1 UDP_FAULTS=drop=0.05 -- \
    -T rmsg-async -l 1M -n 128M -t 2
run delay_rtt_us p50_us 1 UDP_FAULTS=delay=1ms -- -T rmsg --lat -N 500
run delay_saw_1k_MBps rate_bytes_per_s 1e6 UDP_FAULTS=delay=1ms -- \
    -T rmsg -l 1K -n 8M -t 1
run delay_async_1k_MBps rate_bytes_per_s 1e6 UDP_FAULTS=delay=1ms -- \
    -T rmsg-async -l 1K -n 64M -t 1

machine="$(uname -srm), $(getconf _NPROCESSORS_ONLN 2>/dev/null || echo '?') CPUs, $(date -u '+%Y-%m-%d %H:%M UTC')"
cp "$tmp/all.json" "$dir/figures.json"

# Rewrites the value cell of every measured row, and the Machine line.
awk -v figures="$tmp/figures" -v machine="$machine" '
BEGIN {
    while ((getline line < figures) > 0) {
        split(line, kv, " ")
        value[kv[1]] = kv[2]
    }
}
/^Machine:/ { print "Machine: " machine; next }
/^\| `[A-Za-z0-9_]*` \|/ {
    key = $0
    sub(/^\| `/, "", key)
    sub(/`.*/, "", key)
    if (key in value) {
        line = $0
        sub(/\|[^|]*\|[ \t]*$/, "| " value[key] " |", line)
        print line
        next
    }
}
{ print }
' "$report" > "$tmp/report" && cp "$tmp/report" "$report"
echo "measure: figures written into $report"
