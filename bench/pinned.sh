#!/usr/bin/env bash
# bench/pinned.sh TRANSPORT ROUNDS BUILD... - round trips of several builds
# against raw UDP, client and server on CPUs of their own, in alternating
# rounds on loopback.
#
# The round-trip counterpart of bench/alternate.sh.  Each BUILD's rperf
# serves on CPU 0 (taskset); in every round each build's client, on CPU 1,
# runs 20000 round trips of TRANSPORT (rmsg: 64-byte messages, rpc: null
# calls) after its raw UDP baseline.  Printed per run: the p50, the
# baseline's p50 and their ratio; then, per build, the median ratio with
# its range and the median p50s.  Pinning keeps every run's two ends
# apart: left to the scheduler they sometimes share a CPU, which changes a
# raw UDP round trip from 7 to 4 us here and makes ratios meaningless.
#
#   bench/pinned.sh rmsg 7 /tmp/old /tmp/new
#
# Needs two CPUs and taskset.  Environment: N (round trips, default 20000),
# CPUS ("server,client", default "0,1"; "0,0" puts both on one CPU).
set -u
[ $# -ge 3 ] || { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
tr=$1 rounds=$2
shift 2
builds=("$@")
cpus=${CPUS:-0,1}
on_server=${cpus%,*} on_client=${cpus#*,}
command -v taskset > /dev/null || { echo "pinned: no taskset" >&2; exit 1; }
tmp=$(mktemp -d)
pids=()
ports=()
trap 'kill "${pids[@]}" 2> /dev/null; rm -rf "$tmp"' EXIT

# shellcheck source=servers.sh
. "$(dirname "$0")/servers.sh"
serve_builds pinned taskset -c "$on_server"

# field NAME: the number of "NAME": in the JSON on stdin.
field() { sed -n 's/^ *"'"$1"'": \([0-9.e+-]*\),*$/\1/p'; }

for r in $(seq "$rounds"); do
    line="round $r:"
    for i in "${!builds[@]}"; do
        taskset -c "$on_client" "${builds[$i]}/tools/rperf" -c 127.0.0.1 \
            -p "${ports[$i]}" -T "$tr" --lat -N "${N:-20000}" --json \
            > "$tmp/run" 2> /dev/null
        p50=$(field p50_us < "$tmp/run")
        raw=$(field baseline_p50_us < "$tmp/run")
        if [ -z "$p50" ] || [ -z "$raw" ]; then
            echo "pinned: ${builds[$i]}: a run failed" >&2
            exit 1
        fi
        echo "$p50 $raw" >> "$tmp/runs$i"
        line="$line $(awk -v a="$p50" -v b="$raw" -v n="${builds[$i]}" \
            'BEGIN { printf "%s %.2f/%.2f us (%.3f);", n, a, b, a / b }')"
    done
    echo "$line"
done
for i in "${!builds[@]}"; do
    awk -v n="${builds[$i]}" '
        { p[NR] = $1; u[NR] = $2; q[NR] = $1 / $2 }
        function median(a, k,   i, j, t, s) {
            for (i = 1; i <= k; i++) s[i] = a[i]
            for (i = 2; i <= k; i++)
                for (j = i; j > 1 && s[j - 1] > s[j]; j--) {
                    t = s[j]; s[j] = s[j - 1]; s[j - 1] = t
                }
            return k % 2 ? s[(k + 1) / 2] : (s[k / 2] + s[k / 2 + 1]) / 2
        }
        END {
            lo = hi = q[1]
            for (i = 2; i <= NR; i++) { if (q[i] < lo) lo = q[i]; if (q[i] > hi) hi = q[i] }
            printf "%s: ratio to raw UDP, median %.3f [%.3f .. %.3f]; p50 %.2f us, raw UDP %.2f us\n",
                n, median(q, NR), lo, hi, median(p, NR), median(u, NR)
        }' "$tmp/runs$i"
done
