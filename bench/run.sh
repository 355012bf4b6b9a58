#!/usr/bin/env bash
# bench/run.sh [BUILD] - the standard benchmark suite (`make bench`).
#
# Runs rperf (BUILD/tools/rperf) through a fixed list of cases, each
# repeated and reported as medians with their spread and with the ratio to
# the raw UDP baseline that rperf measures on the same path right before
# every run:
#
#   loopback  raw UDP round trip (64 B) and datagram rate (64 B, 1400 B);
#             64-byte round trips of rmsg and TCP; rpc null calls with 1
#             and 8 clients (one client's round trips with client and
#             server on CPUs of their own, and rmsg's and rpc's again on
#             one CPU, where there are two and taskset); bulk goodput of rmsg-async, rmsg (stop and
#             wait) and TCP for 1 KiB, 64 KiB, 1 MiB and 64 MiB messages
#             in 65000-byte datagrams (TCP: the bulk baseline)
#   netns     (root only; bench/netns.sh) two network namespaces with 0,
#             1, 5 and 10% kernel drop each way (tests/netns.sh's setup):
#             rmsg-async and TCP goodput of 1 MiB messages (256 MiB a
#             run), 64-byte rmsg round trips (their p99)
#
# Writes, in OUT (default bench/): results.json (every figure of every
# case), results.svg (drawn by BUILD/tools/benchplot) and RESULTS.md (date,
# machine, the table, the picture); prints the table.  Re-running it
# regenerates all three.  A case whose rperf server is gone after a failed
# attempt (on a shared machine, something else may end it) is run once
# more, and the table says so; any other failure stands.
#
# Environment: BENCH_OUT (OUT), BENCH_REPEATS (loopback, default 7),
# BENCH_NETNS_REPEATS (default 5), BENCH_NETNS=0 (skip the netns part),
# BENCH_QUICK=1 (a trial: tiny totals and 2 repeats, results not worth
# keeping).
set -u
build=${1:-build}
rperf=$build/tools/rperf
plot=$build/tools/benchplot
out=${BENCH_OUT:-bench}
repeats=${BENCH_REPEATS:-7}
netns_repeats=${BENCH_NETNS_REPEATS:-5}
quick=${BENCH_QUICK:-0}
MiB=1048576

[ -x "$rperf" ] && [ -x "$plot" ] || {
    echo "bench: $rperf or $plot missing: run make bench" >&2
    exit 1
}
if [ "$quick" = 1 ]; then
    repeats=2 netns_repeats=2
fi

work=$(mktemp -d)
runs=$work/runs.jsonl
: > "$runs"
server_pid=""
placement=""

cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2> /dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# shellcheck source=lib.sh
. bench/lib.sh

# ---------------------------------------------------------------------------
# Loopback

# Where the processes run (see run_loopback): commands put in front of the
# server's and the client's rperf, empty for "wherever the kernel likes".
pin_server=() pin_client=()

start_loopback() {
    "${pin_server[@]}" "$rperf" --server --port 0 --quiet > "$work/server.out" 2>&1 &
    server_pid=$!
    port=""
    local _
    for _ in $(seq 100); do
        port=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$work/server.out")
        [ -n "$port" ] && return 0
        sleep 0.05
    done
    echo "bench: the rperf server did not start: $(cat "$work/server.out")" >&2
    exit 1
}

# lo CASE GROUP LABEL RPERF-ARGS...: one loopback case.  A server that is
# gone after a failed attempt is started again and the case retried once,
# with a note saying so.
lo() {
    local name=$1 group=$2 label=$3 t0 rc=0 extra="" note=""
    shift 3
    t0=$(now)
    timeout 600 "${pin_client[@]}" "$rperf" -c 127.0.0.1 -p "$port" --json \
        -r "$repeats" "$@" > "$work/one.out" 2>&1 || rc=$?
    if [ "$rc" != 0 ] && ! kill -0 "$server_pid" 2> /dev/null; then
        wait "$server_pid" 2> /dev/null
        extra=$(retry_note "$?")
        note="retried: the server was gone"
        rc=0
        start_loopback
        timeout 600 "${pin_client[@]}" "$rperf" -c 127.0.0.1 -p "$port" --json \
            -r "$repeats" "$@" > "$work/one.out" 2>&1 || rc=$?
    fi
    record "$work/one.out" "$name" "$group" "$label" loopback 0 "$rc" "$extra"
    progress "$label" "$(since "$t0")" "$work/one.out" "$note"
}

stop_loopback() {
    kill "$server_pid" 2> /dev/null
    wait "$server_pid" 2> /dev/null
    server_pid=""
}

# True where client and server can be put on CPUs of their own.
can_pin() {
    [ "$(nproc)" -ge 2 ] && command -v taskset > /dev/null 2>&1
}

run_loopback() {
    local n s size bytes
    n=$(scale 20000)
    # One client's round trips, with the two ends on different CPUs: left
    # to the kernel, the two processes of a ping-pong sometimes share a
    # CPU (a raw UDP round trip then takes 4 us instead of 7 here) and
    # sometimes do not, run by run, and a ratio of two runs placed
    # differently says nothing.  The "one CPU" rows show the other case.
    if can_pin; then
        pin_server=(taskset -c 0) pin_client=(taskset -c 1)
        placement="client on CPU 1, server on CPU 0"
    fi
    start_loopback
    lo udp-rtt latency "raw UDP 64 B round trip" -T udp --lat -l 64 -N "$n"
    lo rmsg-rtt latency "rmsg 64 B round trip" -T rmsg --lat -l 64 -N "$n"
    lo tcp-rtt latency "TCP 64 B round trip" -T tcp --lat -l 64 -N "$n"
    lo rpc-null-1 latency "rpc null call, 1 client" -T rpc --lat -N "$n"
    if can_pin; then
        pin_client=(taskset -c 0)
        lo rmsg-rtt-1cpu latency "rmsg 64 B round trip, one CPU" \
            -T rmsg --lat -l 64 -N "$n"
        lo rpc-null-1-1cpu latency "rpc null call, 1 client, one CPU" \
            -T rpc --lat -N "$n"
        stop_loopback
        pin_server=() pin_client=()
        start_loopback
    fi
    lo rpc-null-8 latency "rpc null calls, 8 clients" -T rpc --lat -P 8 \
        -N "$(scale 80000)"
    s=1.5
    [ "$quick" = 1 ] && s=0.3
    lo udp-rate-64 rate "raw UDP datagram rate, 64 B" -T udp --bw -l 64 -t "$s"
    lo udp-rate-1400 rate "raw UDP datagram rate, 1400 B" -T udp --bw -l 1400 \
        -t "$s"
    for size in 1K 64K 1M 64M; do
        bytes=256M
        [ "$size" = 1K ] && bytes=64M
        [ "$quick" = 1 ] && bytes=$((4 * MiB)) && [ "$size" = 64M ] && bytes=64M
        lo "bulk-rmsg-async-$size" bulk "rmsg-async bulk, $size messages" \
            -T rmsg-async -D 65000 -l "$size" -n "$bytes"
        lo "bulk-rmsg-$size" bulk "rmsg bulk (stop and wait), $size messages" \
            -T rmsg -D 65000 -l "$size" -n "$bytes" -t 3
        lo "bulk-tcp-$size" bulk "TCP bulk, $size messages" \
            -T tcp -D 65000 -l "$size" -n "$bytes"
    done
    stop_loopback
}

# ---------------------------------------------------------------------------
# The report

json_string() { printf '"%s"' "$(printf '%s' "$1" | tr -d '"\\' | tr '\n\t' '  ')"; }

# Which library was measured: the last commit that changed it, and whether
# the working tree has changes to it on top (make rebuilt from the tree).
library_version() {
    local files="udp.c udp.h udp_faults.h rmsg.c rmsg.h rmsg_endpoint.c rpc.c
        rpc.h rpc_marshal.c rpc_marshal.h lib"
    local commit state=clean
    # shellcheck disable=SC2086 # the file list is words
    commit=$(git log -1 --format='%h %cd' --date=short -- $files 2> /dev/null)
    # shellcheck disable=SC2086
    [ -n "$(git status --porcelain -- $files 2> /dev/null)" ] &&
        state="with uncommitted changes"
    echo "commit ${commit:-unknown} (the last that changed it), working tree $state"
}

# How an idle CPU waits: on a virtual machine this sets how fast a blocked
# receiver wakes, which is most of a loopback round trip (see README).
idle_state() {
    local d=/sys/devices/system/cpu/cpuidle h=/sys/module/haltpoll/parameters
    local drv
    drv=$(cat "$d/current_driver" 2> /dev/null) || { echo "unknown"; return; }
    if [ -r "$h/guest_halt_poll_ns" ]; then
        echo "cpuidle $drv, guest_halt_poll_ns $(cat "$h/guest_halt_poll_ns")"
    else
        echo "cpuidle $drv"
    fi
}

write_results() {
    local seconds=$1 netns=$2 first=1 line
    {
        echo "{"
        echo "  \"tool\": \"rmsg make bench\","
        echo "  \"date\": $(json_string "$(date -u '+%Y-%m-%d %H:%M UTC')"),"
        echo "  \"machine\": $(json_string "$(uname -a)"),"
        echo "  \"cpu\": $(json_string "$cpu"),"
        echo "  \"cores\": $(nproc),"
        echo "  \"load_at_start\": $(json_string "$load"),"
        echo "  \"idle\": $(json_string "$idle"),"
        echo "  \"library\": $(json_string "$library"),"
        echo "  \"repeats\": $repeats,"
        echo "  \"netns_repeats\": $netns_repeats,"
        echo "  \"quick\": $([ "$quick" = 1 ] && echo true || echo false),"
        echo "  \"seconds\": $seconds,"
        echo "  \"netns\": $(json_string "$netns"),"
        echo "  \"runs\": ["
        while IFS= read -r line; do
            [ "$first" = 1 ] || echo ","
            printf '    %s' "$line"
            first=0
        done < "$runs"
        echo
        echo "  ]"
        echo "}"
    } > "$out/results.json"
}

write_markdown() {
    local seconds=$1 netns=$2
    local min=$((${seconds%.*} / 60)) sec=$((${seconds%.*} % 60))
    {
        echo "# rmsg benchmark results"
        echo
        echo "Written by \`make bench\` (bench/run.sh) on $(date -u '+%Y-%m-%d at %H:%M UTC');"
        echo "the suite took ${min} min ${sec} s."
        [ "$quick" = 1 ] && echo "**A quick trial (BENCH_QUICK=1): tiny totals, not results.**"
        echo
        echo "- Machine: \`$(uname -a)\`"
        echo "- CPU: $cpu, $(nproc) cores; load average at the start: $load"
        echo "- Idle CPUs: $idle"
        echo "- Library: $library"
        if [ "$netns" = measured ]; then
            echo "- Loopback rows: median of $repeats runs; network namespace rows:"
            echo "  median of $netns_repeats runs."
        else
            echo "- Loopback rows: median of $repeats runs; no network namespace rows"
            echo "  ($netns)."
        fi
        echo
        echo "Every run is preceded by raw UDP on the same path with the same sizes"
        echo "(one \`sendto\` per datagram, a blocking \`recvfrom\` at each end for round"
        echo "trips): \"raw UDP\" is that baseline's median and \"ratio\" the median of the"
        echo "per-run ratios (round trips: p50 over raw p50, lower is better; bulk:"
        echo "goodput over raw UDP's delivered rate, higher is better).  Spread is"
        echo "[min .. max] over the runs.  Bulk on loopback uses 65000-byte datagrams;"
        echo "in the namespaces, 1400.  A null call's baseline sends 1-byte datagrams."
        echo "Goals, as rperf checks them: an rmsg round trip and one rpc client's"
        echo "call at most 1.10x raw UDP, pipelined rmsg bulk at least 1.0x (stop"
        echo "and wait has no bulk goal), about 2 datagrams per rpc call; TCP"
        echo "is the bulk baseline for large messages."
        if [ -n "$placement" ]; then
            echo "The round trips of one client on loopback ran with $placement"
            echo "(taskset), every transport and its baseline alike; the \"one CPU\""
            echo "rows put both on CPU 0.  All else ran where the kernel placed it."
        fi
        echo
        cat "$work/table.md"
        echo
        echo "![Goodput against message size, round-trip percentiles per transport,"
        echo "goodput and round trips against loss, ratios to raw UDP](results.svg)"
        echo
        echo "Every figure of every run (percentiles, retransmissions, datagrams per"
        echo "message, CPU seconds of both ends, the baseline's own figures) is in"
        echo "[results.json](results.json).  Run \`make bench\` again (as root for the"
        echo "namespace rows) to regenerate this file, the JSON and the picture."
    } > "$out/RESULTS.md"
}

main() {
    local t0 netns seconds
    t0=$(now)
    mkdir -p "$out"
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2> /dev/null | head -1)
    load=$(cut -d' ' -f1-3 /proc/loadavg 2> /dev/null)
    idle=$(idle_state)
    library=$(library_version)
    echo "bench: loopback, $repeats runs per case"
    run_loopback
    netns="skipped: BENCH_NETNS=0"
    if [ "${BENCH_NETNS:-1}" != 0 ]; then
        echo "bench: network namespaces, $netns_repeats runs per case"
        BENCH_NETNS_REPEATS=$netns_repeats bash bench/netns.sh "$build" \
            "$runs" "$work/netns-why"
        netns=$(head -1 "$work/netns-why" 2> /dev/null | sed 's/^netns: //')
        [ "$netns" = measured ] || echo "bench: netns $netns"
    fi
    seconds=$(since "$t0")
    write_results "$seconds" "$netns"
    "$plot" -o "$out/results.svg" -t "$work/table.md" "$out/results.json" || {
        echo "bench: benchplot failed" >&2
        exit 1
    }
    write_markdown "$seconds" "$netns"
    local failures
    failures=$(grep -vc '"ok": true' "$runs")
    echo
    cat "$work/table.md"
    echo
    echo "bench: $out/RESULTS.md, $out/results.json, $out/results.svg" \
        "(${seconds} s; $failures case(s) failed)"
    [ "$failures" = 0 ]
}

main
