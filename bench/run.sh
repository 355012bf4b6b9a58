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
#             and 8 clients; bulk goodput of rmsg-async, rmsg (stop and
#             wait) and TCP for 1 KiB, 64 KiB, 1 MiB and 64 MiB messages
#             in 65000-byte datagrams (TCP: the bulk baseline)
#   netns     (root only) two network namespaces with 0, 1, 5 and 10%
#             kernel drop each way (tests/netns.sh's setup, sourced):
#             rmsg-async and TCP goodput of 1 MiB messages, 64-byte rmsg
#             round trips (their p99)
#
# Writes, in OUT (default bench/): results.json (every figure of every
# case), results.svg (drawn by BUILD/tools/benchplot) and RESULTS.md (date,
# machine, the table, the picture); prints the table.  Re-running it
# regenerates all three.
#
# Environment: BENCH_OUT (OUT), BENCH_REPEATS (loopback, default 5),
# BENCH_NETNS_REPEATS (default 3), BENCH_NETNS=0 (skip the netns part),
# BENCH_QUICK=1 (a trial: tiny totals and 2 repeats, results not worth
# keeping).
set -u
build=${1:-build}
rperf=$build/tools/rperf
plot=$build/tools/benchplot
out=${BENCH_OUT:-bench}
repeats=${BENCH_REPEATS:-5}
netns_repeats=${BENCH_NETNS_REPEATS:-3}
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

cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2> /dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now() { date +%s.%N; }

since() { awk -v t0="$1" -v t1="$(now)" 'BEGIN { printf "%.1f", t1 - t0 }'; }

# scale N: N, or a hundredth of it (at least 1000) for a quick trial.
scale() {
    if [ "$quick" = 1 ]; then
        awk -v n="$1" 'BEGIN { n = int(n / 100); print n < 1000 ? 1000 : n }'
    else
        echo "$1"
    fi
}

# ---------------------------------------------------------------------------
# Recording a run: rperf's flat JSON object on one line, with the case's
# own keys in front.

# record FILE CASE GROUP LABEL NETWORK LOSS RC [EXTRA]: appends the JSON
# object in FILE (rperf's output, perhaps mixed with messages) to the runs;
# EXTRA is more "key": value pairs.  A run that printed no object is
# recorded as failed with its first line of output.
record() {
    local file=$1 name=$2 group=$3 label=$4 net=$5 loss=$6 rc=$7 extra=${8:-}
    local head
    head="\"case\": \"$name\", \"group\": \"$group\", \"label\": \"$label\","
    head="$head \"network\": \"$net\", \"loss_pct\": $loss, \"exit\": $rc,"
    [ -n "$extra" ] && head="$head $extra,"
    local obj
    obj=$(sed -n '/^{$/,/^}$/p' "$file" | tr '\n' ' ' |
        sed 's/^{ *//; s/ *} *$//; s/   */ /g')
    if [ -z "$obj" ]; then
        local why
        why=$(grep -v '^[[:space:]]*$' "$file" | head -1 | tr -d '"\\' | cut -c1-200)
        obj="\"ok\": false, \"error\": \"rperf printed no result: ${why:-nothing}\""
    fi
    echo "{$head $obj}" >> "$runs"
}

# progress LABEL SECONDS FILE: one line per case.  (Not "say": the
# netns part sources tests/netns.sh, which has one.)
progress() {
    local status="" err
    err=$(sed -n 's/^  "error": "\(.*\)",$/\1/p' "$3" | head -1)
    [ -n "$err" ] && status="  FAILED: $err"
    grep -q '^{$' "$3" || status="  FAILED: $(head -1 "$3")"
    printf 'bench: %-44s %6s s%s\n' "$1" "$2" "$status"
}

# ---------------------------------------------------------------------------
# Loopback

start_loopback() {
    "$rperf" -s -p 0 -q > "$work/server.out" 2>&1 &
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

# lo CASE GROUP LABEL RPERF-ARGS...: one loopback case.
lo() {
    local name=$1 group=$2 label=$3 t0 rc=0
    shift 3
    t0=$(now)
    timeout 600 "$rperf" -c 127.0.0.1 -p "$port" --json -r "$repeats" "$@" \
        > "$work/one.out" 2>&1 || rc=$?
    record "$work/one.out" "$name" "$group" "$label" loopback 0 "$rc"
    progress "$label" "$(since "$t0")" "$work/one.out"
}

run_loopback() {
    local n s size bytes
    start_loopback
    n=$(scale 20000)
    lo udp-rtt latency "raw UDP 64 B round trip" -T udp --lat -l 64 -N "$n"
    lo rmsg-rtt latency "rmsg 64 B round trip" -T rmsg --lat -l 64 -N "$n"
    lo tcp-rtt latency "TCP 64 B round trip" -T tcp --lat -l 64 -N "$n"
    lo rpc-null-1 latency "rpc null call, 1 client" -T rpc --lat -N "$n"
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
    kill "$server_pid" 2> /dev/null
    wait "$server_pid" 2> /dev/null
    server_pid=""
}

# ---------------------------------------------------------------------------
# Network namespaces with kernel drop, through tests/netns.sh's functions

# ns CASE GROUP LABEL PCT RPERF-ARGS...: one case in the current setup
# (the drop measured over the whole setup is added once it is torn down).
ns() {
    local name=$1 group=$2 label=$3 pct=$4 rc=0 t0
    shift 4
    t0=$(now)
    client "$rperf" -c "$addr_a" -p "$port" --json -r "$netns_repeats" "$@" ||
        rc=$?
    cp "$tmp/client.out" "$work/ns-$name.out"
    echo "$name $group $pct $rc $label" >> "$work/ns-cases"
    progress "$label" "$(since "$t0")" "$tmp/client.out"
}

# ns_record: the cases of the setup just measured, with its drop figures.
ns_record() {
    local share name group pct rc label
    share=$(awk -v a="$drop_a" -v b="$drop_b" -v pa="$pass_a" -v pb="$pass_b" \
        'BEGIN { n = a + b + pa + pb; printf "%.2f", n ? 100 * (a + b) / n : 0 }')
    while read -r name group pct rc label; do
        record "$work/ns-$name.out" "$name" "$group" "$label" netns "$pct" \
            "$rc" "\"drop_measured_pct\": $share"
    done < "$work/ns-cases"
    : > "$work/ns-cases"
}

# One setup per loss rate for rmsg (the rule drops UDP) and one for TCP
# (it drops TCP and UDP), as tests/netns.sh bench does.
run_netns_cases() {
    local pct bytes n
    bytes=$((64 * MiB)) n=2000
    [ "$quick" = 1 ] && bytes=$((8 * MiB)) n=500
    : > "$work/ns-cases"
    for pct in 0 1 5 10; do
        if ns_up "$pct" 0 && start_server "$rperf" -s -p 0 -q; then
            ns "loss-rmsg-async-$pct" loss-bulk "rmsg-async bulk, $pct% drop" \
                "$pct" -T rmsg-async -l 1M -n "$bytes" -t 20
            ns "loss-rtt-$pct" loss-rtt "rmsg 64 B round trip, $pct% drop" \
                "$pct" -T rmsg --lat -l 64 -N "$n" -t 10
        else
            echo "bench: netns setup at $pct% failed: $(cat "$tmp/client.out")"
        fi
        read_counters
        ns_down
        ns_record
        if NETNS_PROTO="tcp, udp" ns_up "$pct" 0 &&
            start_server "$rperf" -s -p 0 -q; then
            ns "loss-tcp-$pct" loss-bulk "TCP bulk, $pct% drop" "$pct" \
                -T tcp -l 1M -n "$bytes" -t 10
        else
            echo "bench: netns setup at $pct% (tcp) failed: $(cat "$tmp/client.out")"
        fi
        read_counters
        ns_down
        ns_record
    done
}

# Runs in a subshell: tests/netns.sh's traps and temporary files stay
# there.  Its first line says whether it measured or why not.
run_netns() {
    (
        # shellcheck source=../tests/netns.sh
        RMSG_BUILD=$build . tests/netns.sh
        # need_root_and_netns exits (this subshell) with "netns: skipped".
        need_root_and_netns > "$work/netns-why" 2>&1
        echo "measured" > "$work/netns-why"
        # TCP is fast per segment only with ethtool (see setup_pair).
        command -v ethtool > /dev/null 2>&1 ||
            DEBIAN_FRONTEND=noninteractive apt-get install -y \
                --no-install-recommends ethtool > "$work/apt.log" 2>&1 ||
            echo "bench: no ethtool: TCP runs without segmentation offload"
        run_netns_cases
        cp "$runs" "$work/netns-runs"
    )
    [ -f "$work/netns-runs" ] && cp "$work/netns-runs" "$runs"
}

# ---------------------------------------------------------------------------
# The report

json_string() { printf '"%s"' "$(printf '%s' "$1" | tr -d '"\\' | tr '\n\t' '  ')"; }

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
        echo "- Loopback rows: median of $repeats runs; network namespace rows: median of $netns_repeats"
        echo "  runs (${netns})."
        echo
        echo "Every run is preceded by raw UDP on the same path with the same sizes"
        echo "(one \`sendto\` per datagram, a blocking \`recvfrom\` at each end for round"
        echo "trips): \"raw UDP\" is that baseline's median and \"ratio\" the median of the"
        echo "per-run ratios (round trips: p50 over raw p50, lower is better; bulk:"
        echo "goodput over raw UDP's delivered rate, higher is better).  Spread is"
        echo "[min .. max] over the runs.  Bulk on loopback uses 65000-byte datagrams;"
        echo "in the namespaces, 1400.  Goals: rmsg round trip and one rpc client's"
        echo "call at most 1.10x raw UDP, rmsg bulk at least 1.0x, about 2 datagrams"
        echo "per rpc call; TCP is the bulk baseline for large messages."
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
    echo "bench: loopback, $repeats runs per case"
    run_loopback
    netns="skipped: BENCH_NETNS=0"
    if [ "${BENCH_NETNS:-1}" != 0 ]; then
        echo "bench: network namespaces, $netns_repeats runs per case"
        run_netns
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
