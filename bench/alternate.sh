#!/usr/bin/env bash
# bench/alternate.sh SIZE TOTAL ROUNDS BUILD... - bulk goodput of several
# builds against TCP, in alternating rounds on loopback.
#
# On a noisy machine two builds measured minutes apart cannot be compared:
# this one runs, in every round, TCP (from the first build) and then each
# build's rmsg-async (65000-byte datagrams), and reports each run as a ratio
# to the TCP run of its own round; then, per build, the ratios and their
# median.  Each BUILD is a build directory (make BUILD=DIR DIR/tools/rperf)
# whose rperf serves on a port of its own while the script runs.
#
#   bench/alternate.sh 1M 2G 7 /tmp/old /tmp/new
#
# Environment: T (the rmsg transport, default rmsg-async).
set -u
[ $# -ge 4 ] || { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
size=$1 total=$2 rounds=$3
shift 3
builds=("$@")
tmp=$(mktemp -d)
pids=()
ports=()
trap 'kill "${pids[@]}" 2> /dev/null; rm -rf "$tmp"' EXIT

# shellcheck source=servers.sh
. "$(dirname "$0")/servers.sh"
serve_builds alternate

rate() { # rate BUILD PORT ARGS...: bytes/s of one run, or nothing
    local b=$1 p=$2
    shift 2
    "$b/tools/rperf" -c 127.0.0.1 -p "$p" --no-baseline --json "$@" 2> /dev/null |
        sed -n 's/^ *"rate_bytes_per_s": \([0-9.e+]*\),*$/\1/p'
}

for r in $(seq "$rounds"); do
    tcp=$(rate "${builds[0]}" "${ports[0]}" -T tcp -l "$size" -n "$total")
    [ -n "$tcp" ] || { echo "alternate: the TCP run failed" >&2; exit 1; }
    line=$(awk -v t="$tcp" 'BEGIN { printf "round %d: tcp %.2f GB/s", '"$r"', t / 1e9 }')
    for i in "${!builds[@]}"; do
        v=$(rate "${builds[$i]}" "${ports[$i]}" -T "${T:-rmsg-async}" \
            -l "$size" -n "$total" -D 65000)
        [ -n "$v" ] || { echo "alternate: ${builds[$i]}: a run failed" >&2; exit 1; }
        q=$(awk -v v="$v" -v t="$tcp" 'BEGIN { printf "%.3f", v / t }')
        echo "$q" >> "$tmp/ratios$i"
        line="$line; ${builds[$i]} $(awk -v v="$v" 'BEGIN { printf "%.2f", v / 1e9 }') GB/s ($q)"
    done
    echo "$line"
done
for i in "${!builds[@]}"; do
    sort -n "$tmp/ratios$i" | awk -v b="${builds[$i]}" '
        { a[NR] = $1; all = all " " $1 }
        END { m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
              printf "%s: ratios to TCP%s; median %.3f\n", b, all, m }'
done
